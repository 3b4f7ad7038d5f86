"""Flags of how the SFT and refined models are prompted (experiments/chat.py): per
role, the format (plain / chat / auto), its own prompt template and a system message.
Templates and messages read the same escapes as --stop_strings (\\n, \\t, ...)."""

from __future__ import annotations

from absl import flags

from pretty_jax.cli.decode_flags import unescape
from pretty_jax.experiments.chat import FORMATS, RolePrompt

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
