"""The organism's small foundation/SFT pair for proxy tuning: a smaller LLaMA-family
model pretrained on the same documents with the same tokenizer, and its SFT model
fine-tuned on the same instructions, cached next to the organism's own pair:

    <organism>/proxy.json                 what was built, from which settings, and the
                                          models' fingerprints (reuse check)
    <organism>/proxy/foundation/, sft/    HF checkpoints
    <organism>/proxy/runs/, model_config.json

Proxy tuning steers the organism's foundation with (small SFT - small foundation)
(engine/logits.py `ProxyTuning`). The pair is built on demand, after the organism,
and recorded in the organism directory's manifest like the rest of it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.organism.build import (
    ModelPair,
    Organism,
    OrganismSettings,
    discard_training_runs,
    ensure_built,
    log_phase,
    train_pair,
)

FORMAT = "pretty_jax/organism-proxy/2"
MARKER = "proxy.json"
TREE = "proxy"


def smaller(settings: OrganismSettings) -> OrganismSettings:
    """The small pair's settings: the world and training of `settings`, a model of half
    the width and two layers (the organism's own: hidden 96, 3 layers) pretrained for
    500 steps."""
    return dataclasses.replace(settings, hidden_size=48, intermediate_size=128, num_layers=2,
                               pretrain=dataclasses.replace(settings.pretrain, steps=500))


def planned_proxy_pair(organism: Organism) -> ModelPair:
    """Where the small pair of `organism` is (or will be built), without building it."""
    return ModelPair(organism.root / TREE)


def ensure_proxy_pair(organism: Organism, small: OrganismSettings = smaller(OrganismSettings()),
                      report: Callable[[str, float | None], None] | None = None) -> ModelPair:
    """The small pair of a built `organism`, trained from `small` (or finished: training
    resumes) unless already there for these settings. A pair built from other settings, or whose
    models changed since, is deleted file by file (the organism directory's manifest
    says which) and rebuilt; a user's file in its folders stays."""
    pair = planned_proxy_pair(organism)
    wanted = {"format": FORMAT, "settings": dataclasses.asdict(small)}
    phases = ("pretrain small foundation", "SFT of the small foundation")
    ensure_built(organism.root, MARKER, wanted, pair, _start_over,
                 lambda directory: train_pair(directory, small, TREE, phases, report or log_phase))
    return pair


def _start_over(directory: RunDirectory) -> None:
    """Deletes the files the pair's build recorded (its training runs' included)."""
    discard_training_runs(directory, TREE)
    directory.remove(directory.owned_under(TREE) + [MARKER])
    directory.remove_empty_dirs(TREE)
