"""How the SFT and refined models are prompted: plain (the foundation's prompt string)
or in their own chat format, each with its own prompt template.

A role's `RolePrompt` (from --sft_prompt_format, --sft_prompt_template,
--sft_system_message and the --refined_* ones) is resolved against the model's
tokenizer before any model loads (`resolve_role`): "auto" becomes "chat" when the
tokenizer has a chat template, else "plain"; "chat" without a template is refused.
The resolved `RoleFormatting` renders the role's prompt ids:

  plain  tokenizer(format_prompt(template, example, fields, shots)): the shots are
         "prompt answer\\n\\n" blocks before the prompt, as for the foundation;
  chat   apply_chat_template([system], user: shot prompt, assistant: shot answer, ...,
         user: prompt, generation prompt): few-shot examples become alternating turns
         (lm-evaluation-harness's --fewshot_as_multiturn).

A chat-formatted model also stops at its template's end-of-turn token (`stopping_model`)
besides the EOS ids of config.json and generation_config.json. `record()` is what
run_config.json keeps for the role's stages: changing it re-runs them (stages.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping, Sequence

from pretty_jax.checkpoints.chat_format import (
    ChatTemplate,
    chat_template_of,
    conversation,
    has_chat_template,
)
from pretty_jax.core.errors import UserError, check_choice
from pretty_jax.models import Model
from pretty_jax.tasks import Example, format_prompt

FORMATS = ("plain", "chat", "auto")
ROLES = {"sft": "sft", "refined": "refined_model"}  # role -> the flag naming its model


@dataclasses.dataclass(frozen=True)
class RolePrompt:
    """How one model role is asked to prompt its model.

    format: "plain", "chat" or "auto"; template: the role's own prompt template (None:
    the run's --prompt_template); system: a system message (chat format only).
    """

    format: str = "auto"
    template: str | None = None
    system: str | None = None

    def __post_init__(self):
        check_choice("prompt format", self.format, FORMATS)


@dataclasses.dataclass(frozen=True)
class RoleFormatting:
    """A role's prompt formatting, resolved for its tokenizer.

    role: "sft" or "refined"; format: "plain" or "chat"; template: the prompt template
    used; system: the system message (None when plain or not given); chat: the chat
    template (chat format only).
    """

    role: str
    format: str
    template: str
    system: str | None = None
    chat: ChatTemplate | None = None

    def record(self) -> dict[str, Any]:
        """What run_config.json, results.json and report.md say of this formatting."""
        record = {"format": self.format, "prompt_template": self.template}
        if self.chat is not None:
            record |= {
                "system_message": self.system, "chat_template_file": self.chat.source,
                "chat_template_sha256": hashlib.sha256(self.chat.text.encode("utf-8")).hexdigest(),
                "end_of_turn_ids": list(self.chat.end_of_turn_ids()), "few_shot": "turns",
            }
        return record

    def prompt_ids(
        self, tokenizer, examples: Sequence[Example], fields: Mapping[str, str], shots: Sequence[Example] = ()
    ) -> list[list[int]]:
        """Token ids [len(examples)][prompt length] of each example's prompt."""
        if self.chat is None:
            return [tokenizer(format_prompt(self.template, e, fields, shots)).input_ids for e in examples]
        return [self.chat.prompt_ids(self._conversation(e, fields, shots)) for e in examples]

    def prompt_text(self, example: Example, fields: Mapping[str, str], shots: Sequence[Example] = ()) -> str:
        """`example`'s prompt as the text `prompt_ids` tokenizes (the chat template
        rendered, special tokens written out), for --dry_run."""
        if self.chat is None:
            return format_prompt(self.template, example, fields, shots)
        return self.chat.prompt_text(self._conversation(example, fields, shots))

    def _conversation(self, example: Example, fields: Mapping[str, str], shots: Sequence[Example]):
        """The chat messages of `example`: the shots as user/assistant turns, then it."""
        shot_prompts = [format_prompt(self.template, s, fields) for s in shots]
        return conversation(shot_prompts + [format_prompt(self.template, example, fields)],
                            [s.reference for s in shots], self.system)

    def stopping_model(self, model: Model) -> Model:
        """`model`, also ending generation at the template's end-of-turn tokens."""
        if self.chat is None:
            return model
        special = model.config.special_tokens
        extra = tuple(i for i in self.chat.end_of_turn_ids() if i not in special.eos_token_ids)
        if not extra:
            return model
        tokens = dataclasses.replace(special, eos_token_ids=tuple(special.eos_token_ids) + extra)
        return dataclasses.replace(model, config=dataclasses.replace(model.config, special_tokens=tokens))


def resolve_role(role: str, prompt: RolePrompt, tokenizer, model_path: str, default_template: str) -> RoleFormatting:
    """`prompt` for the model at `model_path` with `tokenizer`; "chat" for a tokenizer
    without a template is refused naming the model and the flag."""
    template = prompt.template if prompt.template is not None else default_template
    chat_format = prompt.format
    if chat_format == "auto":
        chat_format = "chat" if has_chat_template(tokenizer) else "plain"
    if chat_format == "plain":
        return RoleFormatting(role, "plain", template)
    chat = chat_template_of(tokenizer, model_path, f"--{ROLES[role]}", f"--{role}_prompt_format")
    return RoleFormatting(role, "chat", template, prompt.system or None, chat)


def check_renders(formatting: RoleFormatting, tokenizer, example: Example, fields: Mapping[str, str],
                  shots: Sequence[Example]) -> None:
    """Renders one prompt, so a template that cannot be filled (placeholders, a chat
    template that raises) is refused before any model loads."""
    try:
        formatting.prompt_ids(tokenizer, [example], fields, shots)
    except UserError as e:
        raise UserError(f"--{formatting.role}_prompt_template / --{formatting.role}_prompt_format: {e}") from None


def align_prompts(prompt: RolePrompt, tokenizer, sft_path: str, examples) -> tuple[RoleFormatting, list[list[int]]]:
    """--mode=align: the SFT model's formatting and prompt ids for a prompts file's
    examples (alignment.runner.PromptExample), each prompt the user message (through
    --sft_prompt_template, default "{source}", if given)."""
    formatting = resolve_role("sft", prompt, tokenizer, sft_path, "{source}")
    rows = [Example(e.id, e.prompt, "") for e in examples]
    try:
        return formatting, formatting.prompt_ids(tokenizer, rows, {})
    except UserError as e:
        raise UserError(f"--sft_prompt_template / --sft_prompt_format: {e}") from None


def describe(record: Mapping[str, Any]) -> str:
    """One line of report.md for a role's recorded formatting."""
    if record["format"] == "plain":
        return f"plain, template `{record['prompt_template']!r}`"
    system = f", system message `{record['system_message']!r}`" if record.get("system_message") else ""
    return (f"chat template of `{record['chat_template_file']}`{system}, user message from template "
            f"`{record['prompt_template']!r}`, few-shot examples as turns, stops at ids {record['end_of_turn_ids']}")
