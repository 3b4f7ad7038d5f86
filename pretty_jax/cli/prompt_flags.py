"""The prompt template flags of `python -m pretty_jax.run`: --prompt_template (with the
escapes of --stop_strings, so one flagfile line can hold a newline) and
--prompt_template_file (a template of any length, few-shot included, read verbatim)."""

from __future__ import annotations

from pathlib import Path

from absl import flags

from pretty_jax.cli.decode_flags import unescape
from pretty_jax.core.errors import UserError

PROMPT_TEMPLATE = flags.DEFINE_string(
    "prompt_template", None,
    r"Prompt format string with {source} and the task's fields ({src_lang}, {tgt_lang}; pos: "
    r"{lang}, {upos_tags}), with the escapes \n, \t, \r and \\ (as in --stop_strings); "
    "default: a zero-shot template per task.",
)
PROMPT_TEMPLATE_FILE = flags.DEFINE_string(
    "prompt_template_file", None,
    "A UTF-8 file holding the prompt template (instead of --prompt_template), read as written: no "
    "escapes, one final newline dropped.",
)


def template_from_flags(default: str) -> str:
    """The prompt template the flags give, else `default`."""
    if PROMPT_TEMPLATE.value is not None and PROMPT_TEMPLATE_FILE.value is not None:
        raise UserError("--prompt_template and --prompt_template_file: give one, not both")
    if PROMPT_TEMPLATE_FILE.value is not None:
        return read_template_file(Path(PROMPT_TEMPLATE_FILE.value).expanduser())
    if PROMPT_TEMPLATE.value:
        return unescape(PROMPT_TEMPLATE.value)
    return default


def read_template_file(path: Path) -> str:
    """The template in `path`, without the one newline an editor puts at its end."""
    flag = f"--prompt_template_file={path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{flag} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{flag} is a directory, not a template file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{flag} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    text = text[:-1] if text.endswith("\n") else text
    if not text.strip():
        raise UserError(f"{flag} is empty; write the prompt template in it, e.g. {{source}}")
    return text
