"""The other training-free fixes for off-target output, as experiment systems beside
PreTTY's priors: contrastive decoding and proxy tuning (the logits rules of
engine/logits.py). This module holds what they are — settings, system specs, their
stage inputs and checks — and loads nothing; alternative_runs.py decodes and scores.

Systems (each its own resumable stage, OUT/<pair>/<key>.jsonl):

  contrastive  the foundation over the real prompt, contrasted with the same model over
               one or two contrastive prompts (`--contrastive`):
                 source    the prompt of another example of the same data (a seeded
                           derangement: no example is its own contrast);
                 language  the same prompt asking for the source language instead of
                           the target language ({tgt_lang} filled with the source's name);
               each weighted by its lambda; combined with each prior of
               `--contrastive_priors` (the prior follows every stream's prompt).
  proxy        the foundation steered by a small tuned model minus its small base
               (`--proxy_tuned`, `--proxy_base`), for every token, and for the first k
               generated tokens only (each k of `--proxy_first_k`).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Mapping, Sequence

from pretty_jax.core.errors import UserError
from pretty_jax.engine.logits import Contrastive, ProxyTuning
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.tasks.registry import TaskKind

CONTRASTS = ("source", "language")


@dataclasses.dataclass(frozen=True)
class AlternativeSpec:
    """One alternative system.

    kind: "contrastive" or "proxy".
    prior: the prior every stream decodes after (contrastive; "none" for none).
    contrasts: which contrastive prompts, in stream order after the real one
      (`CONTRASTS`), with `lambdas` their weights.
    first_k: proxy tuning for the first k generated tokens only (None: every token).
    """

    kind: str
    prior: PriorSpec = PriorSpec("none")
    contrasts: tuple[str, ...] = ()
    lambdas: tuple[float, ...] = ()
    first_k: int | None = None

    @property
    def key(self) -> str:
        """A file-name-safe name: "contrastive-language0.5", "dictionary-1word+contrastive-
        source0.1-language0.5", "proxy", "proxy-first3"."""
        if self.kind == "proxy":
            return "proxy" if self.first_k is None else f"proxy-first{self.first_k}"
        contrast = "contrastive-" + "-".join(f"{c}{w:g}" for c, w in zip(self.contrasts, self.lambdas))
        return contrast if self.prior.key == "none" else f"{self.prior.key}+{contrast}"

    @property
    def label(self) -> str:
        if self.kind == "proxy":
            if self.first_k is None:
                return "proxy tuning"
            return f"proxy tuning (first {'token' if self.first_k == 1 else f'{self.first_k} tokens'})"
        contrast = ", ".join(f"{c} λ={w:g}" for c, w in zip(self.contrasts, self.lambdas))
        base = self.prior.label if self.prior.key != "none" else "foundation"
        return f"{base} + contrastive ({contrast})"

    def rule(self) -> Contrastive | ProxyTuning:
        return ProxyTuning(self.first_k) if self.kind == "proxy" else Contrastive(self.lambdas)

    def as_json(self) -> dict[str, Any]:
        if self.kind == "proxy":
            return {"kind": "proxy", "first_k": self.first_k}
        return {"kind": "contrastive", "prior": self.prior.as_json(), "contrasts": list(self.contrasts),
                "lambdas": list(self.lambdas)}


@dataclasses.dataclass(frozen=True)
class AlternativeSettings:
    """The alternative systems of a run (fields are the flags' names).

    contrastive: each entry one system, its contrasts joined by "+" ("language",
      "source", "source+language").
    contrastive_lambda_source / _language: each contrast's weight.
    contrastive_priors: the --priors each contrastive system is combined with (their
      keys, e.g. "none", "dictionary-1word").
    contrastive_seed: seeds which other example gives the source contrast.
    proxy_base / proxy_tuned: the small pair (both or neither); proxy_first_k: the
      first-k variants run beside full proxy tuning.
    """

    contrastive: tuple[str, ...] = ()
    contrastive_lambda_source: float = 0.1
    contrastive_lambda_language: float = 0.5
    contrastive_priors: tuple[str, ...] = ("none",)
    contrastive_seed: int = 0
    proxy_base: str | None = None
    proxy_tuned: str | None = None
    proxy_first_k: tuple[int, ...] = ()

    def systems(self, priors: Sequence[PriorSpec]) -> list[AlternativeSpec]:
        """The systems these settings describe, each prior of `contrastive_priors`
        taken from `priors` (the run's --priors)."""
        by_key = {p.key: p for p in priors}
        weights = {"source": self.contrastive_lambda_source, "language": self.contrastive_lambda_language}
        specs = []
        for entry in self.contrastive:
            contrasts = tuple(entry.split("+"))
            for prior in self.contrastive_priors:
                specs.append(AlternativeSpec("contrastive", by_key.get(prior, PriorSpec("none")), contrasts,
                                             tuple(weights[c] for c in contrasts)))
        if self.proxy_tuned:
            specs += [AlternativeSpec("proxy")] + [AlternativeSpec("proxy", first_k=k) for k in self.proxy_first_k]
        return specs

    def validate(self, task: TaskKind, priors: Sequence[PriorSpec]) -> None:
        """Raises UserError naming the flag of the first setting that cannot work for
        `task` (the registered task) and the run's `priors`."""
        for entry in self.contrastive:
            contrasts = entry.split("+")
            unknown = [c for c in contrasts if c not in CONTRASTS]
            if unknown or len(set(contrasts)) != len(contrasts):
                raise UserError(f"contrastive={entry}: use source, language or source+language")
            if "language" in contrasts and not task.reads_source_language:
                raise UserError(f"contrastive=language asks for the source language: the {task.name} task has none")
        for name in ("contrastive_lambda_source", "contrastive_lambda_language"):
            if not getattr(self, name) >= 0:
                raise UserError(f"{name}={getattr(self, name)} must be >= 0")
        keys = [p.key for p in priors]
        for prior in self.contrastive_priors if self.contrastive else ():
            if prior not in keys:
                raise UserError(f"contrastive_priors={prior}: not among the run's priors ({', '.join(keys)}); "
                                "add it to --priors, so the prior alone is measured beside it")
        if bool(self.proxy_base) != bool(self.proxy_tuned):
            raise UserError("proxy_base and proxy_tuned: give both (the small base and its tuned model) or neither")
        if self.proxy_first_k and not self.proxy_tuned:
            raise UserError("proxy_first_k needs proxy_base and proxy_tuned")
        if any(k < 0 for k in self.proxy_first_k):
            raise UserError(f"proxy_first_k={','.join(map(str, self.proxy_first_k))}: each k must be >= 0")

    def model_paths(self) -> dict[str, str]:
        """The proxy models by flag name, when given."""
        return {name: getattr(self, name) for name in ("proxy_base", "proxy_tuned") if getattr(self, name)}


def stage_inputs(spec: AlternativeSpec, models: Mapping[str, Any], settings: AlternativeSettings) -> dict[str, Any]:
    """What a system's outputs depend on beyond the data and the run's settings: its
    spec, the proxy models' fingerprints, the contrastive seed."""
    inputs = {"system": spec.as_json()}
    if spec.kind == "proxy":
        inputs |= {name: models[name].as_json() for name in ("proxy_base", "proxy_tuned")}
    if "source" in spec.contrasts:
        inputs["contrastive_seed"] = settings.contrastive_seed
    return inputs


def source_contrasts(count: int, seed: int) -> list[int]:
    """For each of `count` examples, the index of another example whose source is its
    contrast: a seeded random permutation with no fixed point."""
    if count < 2:
        raise UserError("contrastive=source needs at least 2 examples (each is contrasted with another's source)")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    # Each example in the shuffled order takes the next one's source: a single cycle.
    contrast = [0] * count
    for position, index in enumerate(order):
        contrast[index] = order[(position + 1) % count]
    return contrast
