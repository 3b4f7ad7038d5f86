"""The dry run of an experiment (`run --dry_run`): every check the run makes before it
loads a model, with nothing written, and the first prompt of each prompted model,
exactly as that model will read it.

The checks are the run's own, in its order (`runner.run_experiment`): the output
directory, the settings (ranges, language codes, the priors' requirements), every model
path (config, weights and tokenizer files present), every pair's data, dictionary,
lexicon and refined file read, every prompt template checked against the task's fields,
the SFT and refined models' formats resolved from their tokenizers and one prompt
rendered (a chat template that raises is refused), and the run recorded in the output
directory (one these settings would change is refused, as the run refuses it). Only the
weights are not read, and nothing is compiled.
"""

from __future__ import annotations

import dataclasses

from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.experiments.chat import describe
from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.plan import Plan, plan_experiment, with_formats
from pretty_jax.experiments.runner import refuse_conflicts
from pretty_jax.experiments.stages import RunRecord
from pretty_jax.tasks import format_prompt


@dataclasses.dataclass(frozen=True)
class PromptPreview:
    """The first evaluated example's prompt as one model reads it.

    role: "foundation", "sft" or "refined"; how: how that model is prompted, in words;
    pair: e.g. "eng-fra"; example_id: e.g. "devtest-00000".
    """

    role: str
    how: str
    pair: str
    example_id: str
    prompt: str


def check_experiment(settings: Settings, refuse_changes: bool = True) -> Plan:
    """Every check `runner.run_experiment` makes before it loads a model; writes nothing.
    Returns the checked plan (its pairs' inputs read, the roles' formats resolved).

    refuse_changes: refuse, as the run does, an earlier run in the output directory that
      these settings would change (False where the run would set it aside: --overwrite,
      the demo)."""
    directory = RunDirectory.inspect(settings.output_dir, "experiment", "--output_dir")
    plan = with_formats(plan_experiment(settings))
    if refuse_changes:
        conflicts = RunRecord(directory).conflicts(settings.recorded(plan.models["foundation"]), plan.stage_inputs())
        refuse_conflicts(settings.output_dir, conflicts)
    return plan


def first_prompts(plan: Plan) -> list[PromptPreview]:
    """The prompt of the first evaluated example of the first pair (after the few-shot
    examples) for the foundation model (before any prior is appended), then for each
    prompted model in its own format (a chat template rendered, special tokens and all).
    A summarisation document is shown whole even where the run would cut it to fit the
    context (that needs the model's length)."""
    pair = plan.pairs[0]
    example, fields = pair.examples[0], pair.task.prompt_fields()
    previews = [PromptPreview("foundation", "as fed before any prior", pair.name, example.id,
                              format_prompt(plan.settings.template, example, fields, pair.shots))]
    for role, formatting in plan.formats.items():
        previews.append(PromptPreview(role, describe(formatting.record()), pair.name, example.id,
                                      formatting.prompt_text(example, fields, pair.shots)))
    return previews
