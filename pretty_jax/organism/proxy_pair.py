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
import json
import logging
import time
from pathlib import Path
from typing import Callable

from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.organism.build import (
    FLAG,
    Organism,
    OrganismSettings,
    built_as,
    discard_training_runs,
    is_built,
    model_config,
    model_fingerprints,
)
from pretty_jax.training.settings import TrainSettings
from pretty_jax.training.trainer import train

FORMAT = "pretty_jax/organism-proxy/1"
MARKER = "proxy.json"
TREE = "proxy"


@dataclasses.dataclass(frozen=True)
class ProxyPairSettings:
    """The small pair's shape and training (the organism's own pair: hidden 96, 3 layers)."""

    hidden_size: int = 48
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    pretrain_steps: int = 500
    sft_steps: int = 60


@dataclasses.dataclass(frozen=True)
class ProxyPair:
    root: Path

    @property
    def foundation(self) -> Path:
        return self.root / "foundation"

    @property
    def sft(self) -> Path:
        return self.root / "sft"


def planned_proxy_pair(organism: Organism) -> ProxyPair:
    """Where the small pair of `organism` is (or will be built), without building it."""
    return ProxyPair(organism.root / TREE)


def ensure_proxy_pair(organism: Organism, settings: ProxyPairSettings = ProxyPairSettings(),
                      organism_settings: OrganismSettings = OrganismSettings(),
                      report: Callable[[str, float | None], None] | None = None) -> ProxyPair:
    """The small pair of a built `organism`, trained (or finished: training resumes)
    unless already there for these settings. A pair built from other settings, or whose
    models changed since, is deleted file by file (the organism directory's manifest
    says which) and rebuilt; a user's file in its folders stays."""
    report = report or (lambda phase, seconds: logging.info("%s: %s", phase, "..." if seconds is None else f"{seconds:.1f}s"))
    pair = planned_proxy_pair(organism)
    wanted = {"format": FORMAT, "settings": dataclasses.asdict(settings),
              "organism": dataclasses.asdict(organism_settings)}
    recorded = built_as(organism.root / MARKER)
    if is_built(recorded, wanted, pair):
        return pair
    directory = RunDirectory.open(organism.root, "organism", FLAG)
    try:
        if recorded is not None and (recorded.get("models") is not None or recorded != wanted):
            _start_over(directory)
        directory.write_text(MARKER, json.dumps(wanted, indent=1))
        _train_pair(directory, pair, settings, organism_settings, report)
        directory.write_text(MARKER, json.dumps(wanted | {"models": model_fingerprints(pair)}, indent=1))
    finally:
        directory.close()
    return pair


def _start_over(directory: RunDirectory) -> None:
    """Deletes the files the pair's build recorded (its training runs' included)."""
    discard_training_runs(directory, TREE)
    directory.remove(directory.owned_under(TREE) + [MARKER])
    directory.remove_empty_dirs(TREE)


def _train_pair(directory: RunDirectory, pair: ProxyPair, settings: ProxyPairSettings,
                organism_settings: OrganismSettings, report: Callable[[str, float | None], None]) -> None:
    small = dataclasses.replace(organism_settings, hidden_size=settings.hidden_size,
                                intermediate_size=settings.intermediate_size, num_layers=settings.num_layers,
                                num_heads=settings.num_heads)
    root, o = directory.path, organism_settings
    data, tokenizer = root / "data", root / "tokenizer"
    config_path = directory.write_text(f"{TREE}/model_config.json", json.dumps(model_config(small, tokenizer)))
    pretrain = TrainSettings(
        output_dir=str(directory.record_dir(f"{TREE}/runs/pretrain")), train_file=str(data / "pretrain.jsonl"),
        init="scratch", model_config=str(config_path), tokenizer=str(tokenizer), data_mode="pretrain",
        max_seq_len=o.max_seq_len, batch_size=o.pretrain_batch, train_steps=settings.pretrain_steps,
        learning_rate=o.pretrain_learning_rate, warmup_steps=settings.pretrain_steps // 10, weight_decay=0.01,
        seed=o.seed, save_every=100, log_every=50, eval_every=10**9,
    )
    sft = TrainSettings(
        output_dir=str(directory.record_dir(f"{TREE}/runs/sft")), train_file=str(data / "sft.jsonl"),
        init=str(pair.foundation), data_mode="sft", max_seq_len=o.sft_seq_len, batch_size=o.sft_batch,
        train_steps=settings.sft_steps, learning_rate=o.sft_learning_rate, warmup_steps=settings.sft_steps // 10,
        seed=o.seed, save_every=50, log_every=25, eval_every=10**9,
    )
    for phase, run, target in (("pretrain small foundation", pretrain, "foundation"),
                               ("SFT of the small foundation", sft, "sft")):
        report(phase, None)
        start = time.perf_counter()
        directory.place_files(train(run, description=phase), f"{TREE}/{target}")
        report(phase, time.perf_counter() - start)
