"""Building the demo's model organism: the world's files, a tokenizer, a foundation
model pretrained from scratch and its SFT counterpart, all in one cache directory.

    <cache>/organism.json            what was built, from which settings (reuse check)
    <cache>/data/pretrain.jsonl       {"text"} documents (pretraining)
    <cache>/data/sft.jsonl            {"prompt", "response"} instructions (SFT only)
    <cache>/data/flores/{eng,vrc}.test   the held-out test set in Flores layout
    <cache>/data/muse/en-vr.txt       the bilingual dictionary (MUSE format)
    <cache>/tokenizer/                a SentencePiece-style BPE trained on the world
    <cache>/foundation/, <cache>/sft/ HF checkpoints (config + safetensors + tokenizer)

Everything is derived from `OrganismSettings`. The cache is reused only when
`organism.json` records these settings and the content fingerprints of `foundation/`
and `sft/` that it records are still theirs: the same fingerprints a run records for
its --foundation and --sft (`core.fingerprint.model_fingerprint`), so the cache is
never staler than a run's record of it. Otherwise it is rebuilt (an unfinished build
resumes its training). Training goes through `pretty_jax.training` like any other
model, in run directories of their own under `runs/`. The cache is a run directory
(run_dir.py): every file the build writes is recorded in its manifest, a rebuild
removes only those, and a `--organism_dir` without a manifest is refused like any
folder pretty_jax did not write, whatever its entries are called.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Callable

from pretty_jax.checkpoints.tokenizer import train_tokenizer
from pretty_jax.core.fingerprint import model_fingerprint
from pretty_jax.core.manifest import MANIFEST
from pretty_jax.core.own_files import read_own
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.organism.world import VARIC, VARIC_FUNCTION_WORDS, World, build_world
from pretty_jax.tasks.languages import register_language
from pretty_jax.tasks.registry import get_task
from pretty_jax.training.settings import TrainSettings
from pretty_jax.training.trainer import train

FORMAT = "pretty_jax/organism/1"  # bump when the world or the build changes: caches rebuild
MARKER = "organism.json"
MODEL_CONFIG = "model_config.json"
SPLIT = "test"
FLAG = "--organism_dir"


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """One of the two training runs: its steps, its batch of sequences of up to
    `seq_len` tokens, and its peak learning rate (10% of the steps warm up to it)."""

    steps: int
    batch: int
    seq_len: int
    learning_rate: float


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
    pretrain: TrainingRun = TrainingRun(steps=800, batch=24, seq_len=128, learning_rate=3e-3)
    sft: TrainingRun = TrainingRun(steps=60, batch=32, seq_len=64, learning_rate=1e-3)


@dataclasses.dataclass(frozen=True)
class ModelPair:
    """Where a built foundation/SFT pair's two HF checkpoints are."""

    root: Path

    @property
    def foundation(self) -> Path:
        return self.root / "foundation"

    @property
    def sft(self) -> Path:
        return self.root / "sft"


@dataclasses.dataclass(frozen=True)
class Organism(ModelPair):
    """Paths of a built organism: its pair of models and its data."""

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


def world_files(world: World) -> dict[str, str]:
    """The world's files (path relative to the data folder -> text)."""
    lines = lambda items: "".join(line + "\n" for line in items)  # noqa: E731
    return {
        "pretrain.jsonl": lines(json.dumps({"text": d}) for d in world.pretraining),
        "sft.jsonl": lines(
            json.dumps({"prompt": instruction_prompt(en), "response": " " + vr}) for en, vr in world.instructions
        ),
        f"flores/eng.{SPLIT}": lines(en for en, _ in world.test),
        f"flores/vrc.{SPLIT}": lines(vr for _, vr in world.test),
        "muse/en-vr.txt": lines(f"{en} {vr}" for en, vr in world.dictionary),
    }


def write_tokenizer(world: World, settings: OrganismSettings, directory: RunDirectory) -> None:
    """A LLaMA-style tokenizer trained on the world's texts and the prompt template,
    saved as `tokenizer/`."""
    texts = list(world.pretraining) + [instruction_prompt(en) for en, _ in world.instructions[:200]]
    with tempfile.TemporaryDirectory(prefix="pretty_jax-tokenizer-") as staging:
        train_tokenizer("sentencepiece", texts, settings.vocab_size).save_pretrained(staging)
        directory.place_files(Path(staging), "tokenizer", move=True)


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


def train_pair(directory: RunDirectory, settings: OrganismSettings, tree: str,
               phases: tuple[str, str], report: Callable[[str, float | None], None]) -> None:
    """Pretrains a foundation of `settings`' shape on the organism's documents, then
    fine-tunes it on its instructions, each a training run of its own in
    `<tree>/runs/{pretrain,sft}` (`tree` "" for the organism itself), and places the
    two HF checkpoints in `<tree>/foundation` and `<tree>/sft`. `phases` names the two
    runs for `report(phase, None)` at each start and `report(phase, seconds)` at its end."""
    root, prefix = directory.path, f"{tree}/" if tree else ""
    data, tokenizer = root / "data", root / "tokenizer"
    config_path = directory.write_text(f"{prefix}{MODEL_CONFIG}", json.dumps(model_config(settings, tokenizer)))
    pretrain = TrainSettings(
        output_dir=str(directory.record_dir(f"{prefix}runs/pretrain")), train_file=str(data / "pretrain.jsonl"),
        init="scratch", model_config=str(config_path), tokenizer=str(tokenizer), data_mode="pretrain",
        weight_decay=0.01, save_every=100, log_every=50, **_run_settings(settings.pretrain, settings.seed),
    )
    sft = TrainSettings(
        output_dir=str(directory.record_dir(f"{prefix}runs/sft")), train_file=str(data / "sft.jsonl"),
        init=str(root / f"{prefix}foundation"), data_mode="sft",
        save_every=50, log_every=25, **_run_settings(settings.sft, settings.seed),
    )
    for phase, run, target in zip(phases, (pretrain, sft), ("foundation", "sft")):
        report(phase, None)
        start = time.perf_counter()
        directory.place_files(train(run, description=phase), f"{prefix}{target}")
        report(phase, time.perf_counter() - start)


def _run_settings(run: TrainingRun, seed: int) -> dict:
    """The TrainSettings fields a TrainingRun sets (no evaluation: the test set is held out)."""
    return dict(max_seq_len=run.seq_len, batch_size=run.batch, train_steps=run.steps, learning_rate=run.learning_rate,
                warmup_steps=run.steps // 10, seed=seed, eval_every=10**9)


def _wanted(settings: OrganismSettings) -> dict:
    return {"format": FORMAT, "settings": dataclasses.asdict(settings)}


def _built_as(marker: Path) -> dict | None:
    """What a build's marker file (organism.json, proxy.json) records; None when there is
    none, it is a link or it does not read."""
    if not marker.is_file() or marker.is_symlink():
        return None
    try:
        return json.loads(read_own(marker))
    except ValueError:
        return None


def _model_fingerprints(pair: ModelPair) -> dict:
    """The fingerprints a run records for a built pair's two models."""
    return {"foundation": model_fingerprint(pair.foundation), "sft": model_fingerprint(pair.sft)}


def _is_built(recorded: dict | None, wanted: dict, pair: ModelPair) -> bool:
    """Whether a marker's `recorded` content is a finished build of `wanted` whose two
    models are still the ones it built."""
    if recorded is None or recorded.get("models") is None:
        return False
    if {key: recorded.get(key) for key in wanted} != wanted:
        return False
    try:
        return recorded["models"] == _model_fingerprints(pair)
    except OSError:  # a model folder is gone
        return False


def discard_training_runs(directory: RunDirectory, under: str = "") -> None:
    """Deletes the files of every training run in a directory the build recorded under
    `under` (each run owns its directory, with its own manifest), deepest first."""
    prefix = f"{under}/" if under else ""
    for name in sorted(directory.dirs, reverse=True):
        if name != "." and name.startswith(prefix) and (directory.path_of(name) / MANIFEST).is_file():
            RunDirectory.open(directory.path_of(name), "train", FLAG).discard_all()


def _start_over(directory: RunDirectory) -> None:
    """Deletes every file the build recorded, the training runs' own files included."""
    discard_training_runs(directory)
    directory.retire()
    directory.discard_retired()


def ensure_built(root: Path, marker: str, wanted: dict, pair: ModelPair,
                 start_over: Callable[[RunDirectory], None], build: Callable[[RunDirectory], None]) -> None:
    """Builds a pair of models in the organism directory `root` unless the `marker`
    file there records a finished build of `wanted` whose models (`pair`) are
    unchanged. A build of other settings, or whose models changed
    since, is first undone by `start_over(directory)`; an unfinished one is finished
    (`build(directory)` resumes its training runs). The marker records `wanted` before
    the build and the models' fingerprints after it."""
    recorded = _built_as(root / marker)
    if (root / MANIFEST).is_file() and _is_built(recorded, wanted, pair):
        return
    directory = RunDirectory.open(root, "organism", FLAG)
    try:
        if recorded is not None and (recorded.get("models") is not None or recorded != wanted):
            start_over(directory)
        directory.write_text(marker, json.dumps(wanted, indent=1))
        build(directory)
        directory.write_text(marker, json.dumps(wanted | {"models": _model_fingerprints(pair)}, indent=1))
    finally:
        directory.close()


def ensure_organism(
    root: Path,
    settings: OrganismSettings = OrganismSettings(),
    report: Callable[[str, float | None], None] | None = None,
) -> Organism:
    """The organism in `root`, built (or finished: training resumes) unless it is
    already there for these settings. `report(phase, None)` hears each phase start,
    `report(phase, seconds)` its end."""
    report = report or log_phase
    register_varic()
    organism = Organism(Path(root))
    ensure_built(organism.root, MARKER, _wanted(settings), organism, _start_over,
                 lambda directory: _build(directory, settings, report))
    return organism


def log_phase(phase: str, seconds: float | None) -> None:
    """The default `report` of a build: a log line at each phase's start and end."""
    logging.info("%s: %s", phase, "..." if seconds is None else f"{seconds:.1f}s")


def _build(directory: RunDirectory, settings: OrganismSettings,
           report: Callable[[str, float | None], None]) -> None:
    report("world + tokenizer", None)
    start = time.perf_counter()
    world = build_world(settings.seed, settings.num_documents, settings.num_instructions, settings.num_test)
    for name, text in world_files(world).items():
        directory.write_text(f"data/{name}", text)
    write_tokenizer(world, settings, directory)
    report("world + tokenizer", time.perf_counter() - start)
    train_pair(directory, settings, "", ("pretrain foundation", "SFT"), report)
