"""An experiment's settings: one frozen dataclass whose fields are the run flags, its
checks, and the part of it that run_config.json records."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from pretty_jax.alignment.runner import AlignmentConfig
from pretty_jax.core.errors import UserError
from pretty_jax.core.flag_names import flag_name
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.engine.stopping import check_stop_strings
from pretty_jax.engine.strategies import BeamSearch, Sampling
from pretty_jax.experiments.alternatives import AlternativeSettings
from pretty_jax.experiments.chat import RolePrompt
from pretty_jax.experiments.inputs import (
    InputRecord,
)
from pretty_jax.experiments.priors import PriorSpec, experiment_systems
from pretty_jax.tasks.languages import get_language
from pretty_jax.tasks.registry import TaskKind, get_task, task_names

# The fields run_config.json records by flag name (beside the foundation and decoding).
_RECORDED = ("task", "data", "split", "source_lang", "limit", "template", "num_shots", "answer_separator", "dtype")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs (built from flags by run.py); field names are the flags'.

    data: the dataset path; may contain {source_lang} / {target_lang}.
    priors: the foundation systems to run; sweep: SFT prior sizes (tokens) for Fig. 5.
    foundation / sft / refined_model: model paths (sft and refined_model optional).
    sft_prompt / refined_prompt: how those models are prompted (experiments/chat.py).
    """

    task: str
    data: str
    split: str
    source_lang: str
    target_langs: tuple[str, ...]
    limit: int | None
    template: str
    num_shots: int
    priors: tuple[PriorSpec, ...]
    sweep: tuple[int, ...]
    decode: DecodeConfig
    batch_size: int
    output_dir: Path
    foundation: str = ""
    sft: str | None = None
    refined_model: str | None = None
    dtype: str = "bfloat16"
    answer_separator: str = " "
    refined_file: str | None = None
    dictionary: str | None = None
    lexicon_data: str | None = None
    spm_model: str | None = None
    align: bool = False
    align_prior_tokens: tuple[int, ...] = (0, 1, 2)
    trajectory: str = "foundation"
    agreement_k: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
    stats_chunk: int = 16
    sft_prompt: RolePrompt = RolePrompt()
    refined_prompt: RolePrompt = RolePrompt()
    prior_choice: tuple[str, ...] = ("first",)
    prior_min_logprob: float | None = None
    adaptive_kl: float | None = None
    adaptive_max_prior_tokens: int = 3
    alternatives: AlternativeSettings = AlternativeSettings()

    def __post_init__(self):
        object.__setattr__(self, "output_dir", Path(self.output_dir))

    @property
    def task_kind(self) -> TaskKind:
        """The registered task (tasks/registry.py); UserError for an unknown name."""
        return get_task(self.task)

    def systems(self) -> list[PriorSpec]:
        """The foundation's prior settings: --priors with their scored variants
        (priors.experiment_systems), plus the sweep, without repeats."""
        scored = experiment_systems(self.priors, self.prior_choice, self.prior_min_logprob, self.adaptive_kl,
                                    self.adaptive_max_prior_tokens)
        specs = scored + [PriorSpec("sft", k, "tokens") if k else PriorSpec("none") for k in self.sweep]
        unique = {}
        for spec in specs:
            unique.setdefault(spec.key, spec)
        return list(unique.values())

    def validate(self) -> None:
        """Raises UserError naming the first setting that cannot work, by its field name
        (the CLI shows it as the flag), before anything is read."""
        kind = self.task_kind
        for name, value, minimum in (("limit", self.limit, 1), ("num_shots", self.num_shots, 0),
                                     ("batch_size", self.batch_size, 1), ("stats_chunk", self.stats_chunk, 1),
                                     ("adaptive_max_prior_tokens", self.adaptive_max_prior_tokens, 1)):
            if value is not None and value < minimum:
                raise UserError(f"{name}={value} must be >= {minimum}")
        for spec in self.priors:
            if spec.kind != "none" and spec.count < 1:
                raise UserError(f"priors: the {spec.kind} prior needs a size >= 1, not {spec.count}")
        self._validate_scored_priors()
        self.alternatives.validate(kind, self.systems())
        check_stop_strings(self.decode.stop_strings)
        if kind.reads_source_language:
            get_language(self.source_lang)
        for target in self.target_langs:
            get_language(target)
        if not self.foundation:
            raise UserError("foundation is required (the foundation model)")
        kinds = {spec.kind for spec in self.systems()}
        if "sft" in kinds and not self.sft:
            raise UserError("sft is required by the sft prior (in priors or the sweep): the SFT model; with only "
                            "a foundation model, choose other priors, e.g. priors=none,oracle")
        if self.align and not self.sft:
            raise UserError("sft is required by align: the SFT model; with only a foundation model, leave align off")
        if "dictionary" in kinds and kind.dictionary is None:
            raise UserError(f"priors: task={self.task} has no dictionary prior")
        if "refined" in kinds and not (self.refined_file or self.refined_model):
            raise UserError("refined_file or refined_model is required by the refined prior")
        if self.refined_file and self.refined_model:
            raise UserError("refined_file and refined_model: give one, not both")
        if self.spm_model and not Path(self.spm_model).expanduser().is_file():
            raise UserError(f"spm_model={self.spm_model} does not exist; give a SentencePiece .model file")

    def _validate_scored_priors(self) -> None:
        if not self.prior_choice or len(set(self.prior_choice)) != len(self.prior_choice):
            raise UserError(f"prior_choice={','.join(self.prior_choice)}: list each rule once (first, foundation)")
        kinds = {spec.kind for spec in self.priors}
        if "foundation" in self.prior_choice and ("dictionary" not in kinds or not self.task_kind.chooses_translations):
            choosing = ", ".join(name for name in task_names() if get_task(name).chooses_translations)
            raise UserError("prior_choice=foundation chooses among a dictionary's translations: it needs the "
                            f"dictionary prior in priors and a task whose dictionary lists them (task={choosing})")
        if self.adaptive_kl is not None and "sft" not in kinds:
            raise UserError("adaptive_kl adds SFT prior tokens one at a time: it needs sft in priors")
        self.systems()  # each scored spec checks its own combination

    def alignment_config(self) -> AlignmentConfig:
        return AlignmentConfig(self.align_prior_tokens, self.trajectory, self.agreement_k, self.decode,
                               self.batch_size, self.stats_chunk)

    def recorded(self, foundation: InputRecord) -> dict[str, Any]:
        """The settings every output of the run depends on, by flag name, as run_config.json
        records them (paths absolute, so a trailing slash changes nothing)."""
        record = {flag_name(field): getattr(self, field) for field in _RECORDED}
        record["data"] = os.path.abspath(os.path.expanduser(self.data))
        return record | {"foundation": foundation.as_json(), **decode_record(self.decode)}


def decode_record(config: DecodeConfig) -> dict[str, Any]:
    """A DecodeConfig by the names of the flags that set it, and the budget rule
    (prior tokens count within max_new_tokens), so that a run recorded before the rule
    is not resumed under it."""
    strategy = config.strategy
    record = {"max_new_tokens": config.max_new_tokens, "max_new_tokens_counts_prior": config.count_prior,
              "stop_strings": list(config.stop_strings),
              "max_len": config.max_len, "overflow": config.overflow, "seed": config.seed,
              "num_beams": 1, "temperature": 0.0}
    if isinstance(strategy, Sampling):
        record |= {"temperature": strategy.temperature, "top_k": strategy.top_k, "top_p": strategy.top_p}
    elif isinstance(strategy, BeamSearch):
        record |= {"num_beams": strategy.num_beams, "length_penalty": strategy.length_penalty,
                   "early_stopping": strategy.early_stopping}
    return record
