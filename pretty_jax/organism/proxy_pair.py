"""The organism's small foundation/SFT pair for proxy tuning: a smaller LLaMA-family
model pretrained on the same documents with the same tokenizer, and its SFT model
fine-tuned on the same instructions, cached next to the organism's own pair:

    <organism>/proxy.json                 what was built, from which settings (reuse check)
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
import shutil
import time
from pathlib import Path
from typing import Callable

from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.organism.build import Organism, OrganismSettings, model_config
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
    """The small pair of a built `organism`, trained unless already there for these
    settings (a pair from other settings is removed and rebuilt)."""
    report = report or (lambda phase, seconds: logging.info("%s: %s", phase, "..." if seconds is None else f"{seconds:.1f}s"))
    pair = ProxyPair(organism.root / TREE)
    marker = organism.root / MARKER
    wanted = {"format": FORMAT, "settings": dataclasses.asdict(settings),
              "organism": dataclasses.asdict(organism_settings)}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return pair
    directory = RunDirectory.open(organism.root, "organism", "--organism_dir")
    try:
        if pair.root.exists():  # built from other settings: start over
            if not directory.owns(TREE):
                raise UserError(f"--organism_dir={organism.root}: {pair.root} was not written by pretty_jax; "
                                "move it away or use another --organism_dir")
            shutil.rmtree(pair.root)
        directory.record(TREE, tree=True)
        directory.record(MARKER)
        _train_pair(organism, pair, settings, organism_settings, report)
        marker.write_text(json.dumps(wanted, indent=1))
    finally:
        directory.close()
    return pair


def _train_pair(organism: Organism, pair: ProxyPair, settings: ProxyPairSettings,
                organism_settings: OrganismSettings, report: Callable[[str, float | None], None]) -> None:
    small = dataclasses.replace(organism_settings, hidden_size=settings.hidden_size,
                                intermediate_size=settings.intermediate_size, num_layers=settings.num_layers,
                                num_heads=settings.num_heads)
    data, o = organism.root / "data", organism_settings
    pair.root.mkdir(parents=True, exist_ok=True)
    config_path = pair.root / "model_config.json"
    config_path.write_text(json.dumps(model_config(small, organism.root / "tokenizer")))
    pretrain = TrainSettings(
        output_dir=str(pair.root / "runs" / "pretrain"), train_file=str(data / "pretrain.jsonl"), init="scratch",
        model_config=str(config_path), tokenizer=str(organism.root / "tokenizer"), data_mode="pretrain",
        max_seq_len=o.max_seq_len, batch_size=o.pretrain_batch, train_steps=settings.pretrain_steps,
        learning_rate=o.pretrain_learning_rate, warmup_steps=settings.pretrain_steps // 10, weight_decay=0.01,
        seed=o.seed, save_every=100, log_every=50, eval_every=10**9,
    )
    sft = TrainSettings(
        output_dir=str(pair.root / "runs" / "sft"), train_file=str(data / "sft.jsonl"), init=str(pair.foundation),
        data_mode="sft", max_seq_len=o.sft_seq_len, batch_size=o.sft_batch, train_steps=settings.sft_steps,
        learning_rate=o.sft_learning_rate, warmup_steps=settings.sft_steps // 10, seed=o.seed, save_every=50,
        log_every=25, eval_every=10**9,
    )
    for phase, run, target in (("pretrain small foundation", pretrain, pair.foundation),
                               ("SFT of the small foundation", sft, pair.sft)):
        report(phase, None)
        start = time.perf_counter()
        _place(train(run, description=phase), target)
        report(phase, time.perf_counter() - start)


def _place(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
