"""What a dry run shows of an experiment's prompts: the first one, exactly as the
foundation model will read it (before any prior is appended)."""

from __future__ import annotations

import dataclasses

from pretty_jax.core.errors import UserError
from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.inputs import make_task
from pretty_jax.tasks import check_template, format_prompt


@dataclasses.dataclass(frozen=True)
class PromptPreview:
    pair: str  # e.g. "eng-fra"
    example_id: str
    prompt: str


class UnreadableData(Exception):
    """The first pair's data cannot be read where the dry run runs (its message says why)."""


def first_prompt(settings: Settings) -> PromptPreview:
    """The prompt of the first evaluated example of the first language pair: the
    template filled, after the `num_shots` few-shot examples. Reads that pair's data
    (raises UnreadableData when it cannot) and checks the template against its fields
    (UserError naming the template); loads no model, so a summarisation document is
    shown whole even where the run would cut it to fit the context."""
    try:
        task = make_task(settings, settings.target_langs[0])
        examples = task.examples()
    except (UserError, OSError) as e:
        raise UnreadableData(str(e)) from None
    shots, evaluated = examples[: settings.num_shots], examples[settings.num_shots :]
    if not evaluated:
        raise UserError(f"num_shots={settings.num_shots} leaves no examples to evaluate ({len(examples)} read)")
    check_template(settings.template, task.prompt_fields(), "template")
    prompt = format_prompt(settings.template, evaluated[0], task.prompt_fields(), shots)
    return PromptPreview(f"{task.source_lang}-{task.target_lang}", evaluated[0].id, prompt)
