"""A checkpoint's chat format: its tokenizer's chat template, rendered by transformers'
`apply_chat_template`, and the end-of-turn tokens that template closes a turn with.

A chat model (Llama-2-chat, Qwen2.5-Instruct, Gemma 3 IT, ...) expects its prompt
wrapped in its own template, stored beside the tokenizer in `chat_template.jinja` (or
`chat_template.json`, or the "chat_template" key of `tokenizer_config.json`). The
template is rendered by transformers itself, so the ids fed to the model are exactly
`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.gguf import importer
from pretty_jax.core.errors import UserError

# Where transformers reads a chat template from, in its order of preference.
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")
# Content of a probe assistant turn: what the template writes after it closes the turn.
_PROBE = "PRETTY-JAX-PROBE-ANSWER"


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def template_file(model_path: str | Path) -> str:
    """The file the chat template of the model at `model_path` comes from (for a GGUF
    model, the .gguf file itself: its `tokenizer.chat_template` metadata)."""
    if importer.is_gguf(model_path):
        return str(Path(model_path).expanduser().absolute())
    directory = loading.model_directory(Path(model_path).expanduser())
    for name in TEMPLATE_FILES:
        if (directory / name).exists():
            return str((directory / name).absolute())
    return str(directory.absolute() / TEMPLATE_FILES[-1])


def conversation(
    user_turns: Sequence[str], answers: Sequence[str], system: str | None = None
) -> list[dict[str, str]]:
    """Messages alternating user/assistant, ending with the last user turn.

    user_turns: [n + 1] prompts (few-shot examples, then the one to answer);
    answers: [n] the few-shot examples' answers; system: an optional system message.
    """
    if len(user_turns) != len(answers) + 1:
        raise ValueError(f"{len(user_turns)} user turns need {len(user_turns) - 1} answers, not {len(answers)}")
    messages = [{"role": "system", "content": system}] if system else []
    for user, answer in zip(user_turns, answers):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": user_turns[-1]}]


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A tokenizer with a chat template, and the file that template came from (named
    in every error)."""

    tokenizer: Any
    source: str

    @property
    def text(self) -> str:
        return self.tokenizer.chat_template

    def _render(self, messages: Sequence[Mapping[str, str]], tokenize: bool, generation_prompt: bool):
        try:
            return self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=generation_prompt, tokenize=tokenize, return_dict=False
            )
        except Exception as e:  # jinja2 errors, and raise_exception() inside templates
            raise UserError(
                f"the chat template in {self.source} failed to render {len(messages)} messages "
                f"(roles {', '.join(m['role'] for m in messages)}): {type(e).__name__}: {e}. Fix the template, "
                "leave out the system message if the template refuses one, or prompt this model plain"
            ) from None

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of `messages` followed by the generation prompt (the template's
        own special tokens included; nothing else added)."""
        return [int(i) for i in self._render(messages, tokenize=True, generation_prompt=True)]

    def prompt_text(self, messages: Sequence[Mapping[str, str]]) -> str:
        return self._render(messages, tokenize=False, generation_prompt=True)

    def end_of_turn_ids(self) -> tuple[int, ...]:
        """The special token(s) the template closes an assistant turn with (ChatML's
        <|im_end|>, Llama-2's </s>, Gemma's <end_of_turn>): the first special token
        after a probe answer in a rendered conversation; () when it writes none."""
        probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _PROBE}]
        text = self._render(probe, tokenize=False, generation_prompt=False)
        if _PROBE not in text:
            return ()
        after = text[text.rindex(_PROBE) + len(_PROBE):]
        special = set(self.tokenizer.all_special_ids) | {
            i for i, token in self.tokenizer.added_tokens_decoder.items() if token.special
        }
        for token_id in self.tokenizer(after, add_special_tokens=False).input_ids:
            if token_id in special:
                return (int(token_id),)
        return ()


def chat_template_of(tokenizer, model_path: str | Path, model_flag: str, format_flag: str) -> ChatTemplate:
    """The chat template of the model at `model_path`; a tokenizer without one is
    refused naming the model and what to do."""
    if not has_chat_template(tokenizer):
        raise UserError(
            f"{format_flag}=chat: the tokenizer of {model_flag}={model_path} has no chat template "
            f"(none of {', '.join(TEMPLATE_FILES)} holds one); add the model's template to its "
            f"chat_template.jinja, or use {format_flag}=plain (or auto)"
        )
    return ChatTemplate(tokenizer, template_file(model_path))
