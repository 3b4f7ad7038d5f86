"""A checked experiment: every model path and every pair's inputs read before any model
loads, and the inputs each stage file depends on (its resume fingerprint)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pretty_jax.checkpoints.loading import check_lengths, load_tokenizer_of
from pretty_jax.core.errors import UserError
from pretty_jax.experiments import alternatives
from pretty_jax.experiments.chat import RoleFormatting, RolePrompt, check_renders, resolve_role
from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.inputs import (
    InputRecord,
    PairInputs,
    check_model,
    check_one_file_per_pair,
    read_pair_inputs,
)
from pretty_jax.experiments.prior_scoring import SCORES_SUFFIX
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.models import Model
from pretty_jax.tasks import check_template


@dataclasses.dataclass
class Models:
    foundation: Model
    tokenizer: Any
    sft: Model | None = None
    sft_tokenizer: Any = None
    refined: Model | None = None
    refined_tokenizer: Any = None
    proxy: dict[str, Model] = dataclasses.field(default_factory=dict)  # alternatives.py


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked experiment: settings, each pair's inputs, each model's record and
    (after `with_formats`) the prompt formatting of the SFT and refined models ("sft",
    "refined"). Stage inputs that formats add only re-run stages, never conflict."""

    settings: Settings
    pairs: list[PairInputs]
    models: dict[str, InputRecord]
    formats: dict[str, RoleFormatting] = dataclasses.field(default_factory=dict)

    def _prompt(self, role: str) -> dict[str, Any]:
        """The stage input of a role's prompt formatting (re-run when it changes)."""
        return {f"{role}_prompt": self.formats[role].record()} if role in self.formats else {}

    def stage_inputs(self) -> dict[str, dict[str, Any]]:
        """Each stage file this run uses -> the inputs its content depends on (beyond
        the run's settings)."""
        stages = {}
        for pair in self.pairs:
            data = {"data": pair.records["data"].as_json()}
            if self.settings.sft:
                stages[f"{pair.name}/sft.jsonl"] = data | {"sft": self.models["sft"].as_json()} | self._prompt("sft")
            if self.settings.refined_model and any(s.kind == "refined" for s in self.settings.systems()):
                stages[f"{pair.name}/refined.jsonl"] = data | {"refined_model": self.models["refined_model"].as_json()} \
                    | self._prompt("refined")
            for spec in self.settings.systems():
                inputs = data | {"prior": spec.as_json()} | self._prior_inputs(spec, pair)
                stages[f"{pair.name}/{spec.key}.jsonl"] = inputs
                if spec.scored:  # the priors the models judged first (prior_scoring.py)
                    stages[f"{pair.name}/{spec.key}{SCORES_SUFFIX}.jsonl"] = inputs
            for alt in self.settings.alternatives.systems(self.settings.systems()):
                stages[f"{pair.name}/{alt.key}.jsonl"] = data | {"prior": alt.prior.as_json()} \
                    | self._prior_inputs(alt.prior, pair) | alternatives.stage_inputs(alt, self.models, self.settings.alternatives)
        return stages

    def _prior_inputs(self, spec: PriorSpec, pair: PairInputs) -> dict[str, Any]:
        if spec.kind == "sft":
            return {"sft": self.models["sft"].as_json()} | self._prompt("sft")
        if spec.kind == "refined":
            source = pair.records.get("refined_file") or self.models.get("refined_model")
            return {source.flag.lstrip("-"): source.as_json()} | self._prompt("refined")
        if spec.kind == "dictionary":
            source = pair.records.get("lexicon") or pair.records["dictionary"]
            return {source.flag.lstrip("-"): source.as_json()}
        return {}


def plan_experiment(settings: Settings) -> Plan:
    """Checks the settings, every model path (and the decoding lengths against each
    model's positions and the machine's memory), every pair's inputs and every prompt
    template against the pair's fields; loads nothing."""
    settings.validate()
    models = {"foundation": check_model(settings.foundation, "--foundation")}
    if settings.sft:
        models["sft"] = check_model(settings.sft, "--sft")
    if settings.refined_model:
        models["refined_model"] = check_model(settings.refined_model, "--refined_model")
    for name, path in settings.alternatives.model_paths().items():
        models[name] = check_model(path, f"--{name}")
    rows = settings.batch_size * getattr(settings.decode.strategy, "num_beams", 1)
    for record in models.values():
        check_lengths(record.path, record.flag, settings.decode.max_new_tokens, settings.decode.max_len, rows,
                      settings.dtype)
    pairs = [read_pair_inputs(settings, target) for target in settings.target_langs]
    names = [pair.name for pair in pairs]
    if len(set(names)) != len(names):
        raise UserError(f"--target_lang lists a language twice ({', '.join(names)})")
    check_one_file_per_pair(settings, pairs)
    for pair in pairs:
        fields = pair.task.prompt_fields()
        check_template(settings.template, fields, "template")
        for role, _, prompt in _prompted_roles(settings):
            if prompt.template is not None:
                check_template(prompt.template, fields, f"{role}_prompt_template")
    return Plan(settings, pairs, models)


def _prompted_roles(settings: Settings) -> list[tuple[str, str, RolePrompt]]:
    """(role, model path, RolePrompt) of the SFT and refined models the run prompts."""
    uses_refined_model = settings.refined_model and any(s.kind == "refined" for s in settings.systems())
    roles = [("sft", settings.sft, settings.sft_prompt),
             ("refined", settings.refined_model if uses_refined_model else None, settings.refined_prompt)]
    return [(role, path, prompt) for role, path, prompt in roles if path]


def with_formats(plan: Plan) -> Plan:
    """`plan` with the SFT and refined models' prompt formatting, from their tokenizers
    (loaded without the weights), each checked by rendering one prompt of the first
    pair. Apart from `plan_experiment` because it imports transformers, which takes
    seconds (a dry run does without); a run resolves them before it opens its output
    directory."""
    settings, pairs = plan.settings, plan.pairs
    formats = {}
    for role, path, prompt in _prompted_roles(settings):
        tokenizer = load_tokenizer_of(path)
        formats[role] = resolve_role(role, prompt, tokenizer, path, settings.template)
        pair = pairs[0]
        check_renders(formats[role], tokenizer, pair.examples[0], pair.task.prompt_fields(), pair.shots)
    return dataclasses.replace(plan, formats=formats)
