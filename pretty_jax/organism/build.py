"""Building the demo's model organism: the world's files, a tokenizer, a foundation
model pretrained from scratch and its SFT counterpart, all in one cache directory.

    <cache>/organism.json            what was built, from which settings (reuse check)
    <cache>/data/pretrain.jsonl       {"text"} documents (pretraining)
    <cache>/data/sft.jsonl            {"prompt", "response"} instructions (SFT only)
    <cache>/data/flores/{eng,vrc}.test   the held-out test set in Flores layout
    <cache>/data/muse/en-vr.txt       the bilingual dictionary (MUSE format)
    <cache>/tokenizer/                a SentencePiece-style BPE trained on the world
    <cache>/foundation/, <cache>/sft/ HF checkpoints (config + safetensors + tokenizer)

Everything is derived from `OrganismSettings`; a cache built from other settings is
rebuilt. Training goes through `pretty_jax.training` like any other model. The cache
is a run directory (run_dir.py): what the build writes is recorded in its manifest, a
rebuild removes only that, and a `--organism_dir` holding other files is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

from pretty_jax.checkpoints.tokenizer import train_tokenizer
from pretty_jax.core.run_dir import MANIFEST, RunDirectory
from pretty_jax.organism.world import VARIC, VARIC_FUNCTION_WORDS, World, build_world
from pretty_jax.tasks.languages import register_language
from pretty_jax.tasks.registry import get_task
from pretty_jax.training.settings import TrainSettings
from pretty_jax.training.trainer import train

FORMAT = "pretty_jax/organism/1"  # bump when the world or the build changes: caches rebuild
MARKER = "organism.json"
# What a build writes: folders (recorded whole) and files.
TREES = ("data", "tokenizer", "runs", "foundation", "sft")
FILES = (MARKER, "model_config.json")
SPLIT = "test"


@dataclasses.dataclass(frozen=True)
class OrganismSettings:
    """The world, the model's shape and the two training runs."""

    seed: int = 0
    num_documents: int = 12000
    num_instructions: int = 3000
    num_test: int = 100
    vocab_size: int = 512
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 3
    num_heads: int = 4
    max_seq_len: int = 128
    pretrain_steps: int = 800
    pretrain_batch: int = 24
    pretrain_learning_rate: float = 3e-3
    sft_seq_len: int = 64
    sft_steps: int = 60
    sft_batch: int = 32
    sft_learning_rate: float = 1e-3


@dataclasses.dataclass(frozen=True)
class Organism:
    """Paths of a built organism."""

    root: Path

    @property
    def foundation(self) -> Path:
        return self.root / "foundation"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def flores(self) -> Path:
        return self.root / "data" / "flores"

    @property
    def dictionary(self) -> Path:
        return self.root / "data" / "muse" / "en-vr.txt"


def register_varic() -> None:
    """Makes the invented language known to tasks and metrics (code "vrc")."""
    register_language(VARIC, VARIC_FUNCTION_WORDS)


def instruction_prompt(english: str) -> str:
    """The SFT prompt: the experiment's own default translation template."""
    template = get_task("translation").default_template
    return template.format(src_lang="English", tgt_lang=VARIC.name, source=english)


def _write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_world(world: World, data: Path) -> None:
    _write_lines(data / "pretrain.jsonl", (json.dumps({"text": d}) for d in world.pretraining))
    _write_lines(
        data / "sft.jsonl",
        (json.dumps({"prompt": instruction_prompt(en), "response": " " + vr}) for en, vr in world.instructions),
    )
    _write_lines(data / "flores" / f"eng.{SPLIT}", (en for en, _ in world.test))
    _write_lines(data / "flores" / f"vrc.{SPLIT}", (vr for _, vr in world.test))
    _write_lines(data / "muse" / "en-vr.txt", (f"{en} {vr}" for en, vr in world.dictionary))


def write_tokenizer(world: World, settings: OrganismSettings, out: Path) -> None:
    """A LLaMA-style tokenizer trained on the world's texts and the prompt template."""
    texts = list(world.pretraining) + [instruction_prompt(en) for en, _ in world.instructions[:200]]
    train_tokenizer("sentencepiece", texts, settings.vocab_size).save_pretrained(out)


def model_config(settings: OrganismSettings, tokenizer_dir: Path) -> dict:
    """The HF config.json of the organism's LLaMA-family model."""
    tokens = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = len(tokens["model"]["vocab"]) + len(tokens.get("added_tokens", []))
    return dict(
        model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=-(-vocab // 64) * 64,
        hidden_size=settings.hidden_size, intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )


def _pretrain(settings: OrganismSettings, root: Path) -> Path:
    config_path = root / "model_config.json"
    config_path.write_text(json.dumps(model_config(settings, root / "tokenizer")))
    run = TrainSettings(
        output_dir=str(root / "runs" / "pretrain"), train_file=str(root / "data" / "pretrain.jsonl"),
        init="scratch", model_config=str(config_path), tokenizer=str(root / "tokenizer"), data_mode="pretrain",
        max_seq_len=settings.max_seq_len, batch_size=settings.pretrain_batch, train_steps=settings.pretrain_steps,
        learning_rate=settings.pretrain_learning_rate, warmup_steps=settings.pretrain_steps // 10,
        weight_decay=0.01, seed=settings.seed, save_every=100, log_every=50, eval_every=10**9,
    )
    return train(run, description="pretrain foundation")


def _sft(settings: OrganismSettings, root: Path) -> Path:
    run = TrainSettings(
        output_dir=str(root / "runs" / "sft"), train_file=str(root / "data" / "sft.jsonl"),
        init=str(root / "foundation"), data_mode="sft", max_seq_len=settings.sft_seq_len,
        batch_size=settings.sft_batch, train_steps=settings.sft_steps, learning_rate=settings.sft_learning_rate,
        warmup_steps=settings.sft_steps // 10, seed=settings.seed, save_every=50, log_every=25, eval_every=10**9,
    )
    return train(run, description="SFT")


def _place(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def ensure_organism(
    root: Path,
    settings: OrganismSettings = OrganismSettings(),
    report: Callable[[str, float | None], None] | None = None,
) -> Organism:
    """The organism in `root`, built (or finished: training resumes) unless it is
    already there for these settings. `report(phase, None)` hears each phase start,
    `report(phase, seconds)` its end."""
    report = report or (lambda phase, seconds: logging.info("%s: %s", phase, "..." if seconds is None else f"{seconds:.1f}s"))
    register_varic()
    organism = Organism(root)
    marker = root / MARKER
    wanted = {"format": FORMAT, "settings": dataclasses.asdict(settings)}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return organism
    # A cache an older pretty_jax left without a manifest holds only the build's names,
    # but its training runs have no manifests either: rebuild it whole.
    legacy = root.is_dir() and not (root / MANIFEST).exists() and any(root.iterdir())
    directory = RunDirectory.adopt(root, "organism", "--organism_dir", TREES + FILES)
    try:
        if marker.exists() or legacy:  # built from other settings, or by an older version: start over
            directory.retire()
            directory.discard_retired()
        for name in TREES:
            directory.record(name, tree=True)
        for name in FILES:
            directory.record(name)
        _build(organism, settings, report)
        marker.write_text(json.dumps(wanted, indent=1))
    finally:
        directory.close()
    return organism


def _build(organism: Organism, settings: OrganismSettings, report: Callable[[str, float | None], None]) -> None:
    root = organism.root

    def make_world():
        world = build_world(settings.seed, settings.num_documents, settings.num_instructions, settings.num_test)
        write_world(world, root / "data")
        write_tokenizer(world, settings, root / "tokenizer")

    phases = [
        ("world + tokenizer", make_world),
        ("pretrain foundation", lambda: _place(_pretrain(settings, root), organism.foundation)),
        ("SFT", lambda: _place(_sft(settings, root), organism.sft)),
    ]
    for phase, action in phases:
        report(phase, None)
        start = time.perf_counter()
        action()
        report(phase, time.perf_counter() - start)
