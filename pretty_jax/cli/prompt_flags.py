"""The prompt flags of `python -m pretty_jax.run`: --prompt_template (with the escapes of
--stop_strings, so one flagfile line can hold a newline), --prompt_template_file (a
template of any length, few-shot included, read verbatim), and how the SFT and refined
models are prompted (experiments/chat.py): per role, the format (plain / chat / auto),
its own prompt template and a system message, with the same escapes."""

from __future__ import annotations

from pathlib import Path

from absl import flags

from pretty_jax.cli.escapes import unescape
from pretty_jax.core.errors import UserError
from pretty_jax.experiments.chat import FORMATS, RolePrompt

HELP_TITLE = "prompts (foundation, SFT and refined models)"  # the group --help lists these flags under

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


_ROLE_NAMES = {"sft": "the SFT model (--sft)", "refined": "the refined model (--refined_model)"}


def _define(role: str) -> tuple[flags.FlagHolder, flags.FlagHolder, flags.FlagHolder]:
    who = _ROLE_NAMES[role]
    return (
        flags.DEFINE_enum(
            f"{role}_prompt_format", "auto", list(FORMATS),
            f"How {who} is prompted: plain (the prompt string, as the foundation), chat (its tokenizer's "
            "chat template: the prompt as the user message, few-shot examples as turns, stopping at the "
            "end-of-turn token) or auto (chat when the tokenizer has a chat template, else plain).",
        ),
        flags.DEFINE_string(
            f"{role}_prompt_template", None,
            f"Prompt template of {who}, with the placeholders and escapes of --prompt_template "
            "(default: --prompt_template).",
        ),
        flags.DEFINE_string(
            f"{role}_system_message", None, f"System message of {who} in chat format (escapes allowed)."
        ),
    )


_FLAGS = {role: _define(role) for role in _ROLE_NAMES}


def role_prompts_from_flags() -> dict[str, RolePrompt]:
    """Settings fields sft_prompt / refined_prompt from the flags."""
    prompts = {}
    for role, (form, template, system) in _FLAGS.items():
        prompts[f"{role}_prompt"] = RolePrompt(
            form.value,
            None if template.value is None else unescape(template.value),
            None if system.value is None else unescape(system.value),
        )
    return prompts
