"""Shared fixtures: tiny random-weight HF checkpoints, built once per test session.

`tiny_checkpoint` is built by transformers (torch), for the tests that compare against
it; `jax_checkpoint` is the same preset built without torch, and `jax_sft_stand_in` a
copy with perturbed weights (a second model standing in for an SFT model), for every
other test. Each test module's compiled programs are dropped when it ends
(`_compiled_programs_per_module`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax.checkpoints import tiny
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.core import compilation_cache
from pretty_jax.core.errors import UserError


# The developer loop `pytest -m "not slow"` leaves to the full suite the tests marked
# `slow` where they stand (each took 6 s or more on 2 cores, measured with --durations
# and a cold compilation cache) and these modules, whose tests take minutes together.
SLOW_MODULES = frozenset({"test_demo.py", "test_continuous.py", "test_faults.py", "test_parity.py",
                          "test_parallel.py", "test_gguf.py", "test_gguf_real.py"})


def pytest_configure(config):
    """Each test process keeps its compiled programs where the entry points keep theirs
    (`compilation_cache.default_dir()`): the suite compiles the same tiny models' programs
    in many modules (and `_compiled_programs_per_module` empties the in-memory caches
    between them), both xdist workers and the CLI runs tests start share the folder, and
    a second run of the suite compiles almost nothing. Entries are keyed by the program
    and the JAX version, so a stale one is never used. Where the folder cannot be written
    (Bazel's sandbox keeps the home folder read-only) the tests compile without it."""
    try:
        compilation_cache.enable()
    except UserError:
        pass


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def _needs_shared_data(reason: str) -> bool:
    """Whether a skip's reason is the absence of ../shared/data (the tests' phrasings)."""
    return "shared/data" in reason or "real sample data" in reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a test skipped for want of ../shared/data fails instead: CI must
    run the tests of the real sample data, never pass without them."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if _needs_shared_data(reason):
        report.outcome = "failed"
        report.longrepr = f"CI=true and this test needs the real sample data: {reason}"


@pytest.fixture(scope="module", autouse=True)
def _compiled_programs_per_module():
    """Empties JAX's caches of compiled programs after each test module. XLA's CPU backend
    maps each program's code into memory in ~10 small mappings; the suite compiles
    thousands of programs in one process, and kept, they reach Linux's default limit of
    65,530 mappings per process (vm.max_map_count), where the next compilation crashes
    with a segmentation fault."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """`tiny_checkpoint(preset)` -> directory of that preset's HF checkpoint."""
    pytest.importorskip("torch", reason="tiny HF checkpoints are built with torch")
    built: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in built:
            built[preset] = tiny.build(preset, tmp_path_factory.mktemp(preset))
        return built[preset]

    return get


@pytest.fixture(scope="session")
def jax_checkpoint(tmp_path_factory):
    """`jax_checkpoint(preset)` -> directory of that preset's HF checkpoint, built
    without torch (`tiny.build_jax`)."""
    built: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in built:
            built[preset] = tiny.build_jax(preset, tmp_path_factory.mktemp(f"{preset}-jax") / "model")
        return built[preset]

    return get


@pytest.fixture(scope="session")
def jax_sft_stand_in(jax_checkpoint, tmp_path_factory):
    """`jax_sft_stand_in(preset)` -> a copy of `jax_checkpoint(preset)` with every weight
    perturbed: same architecture and tokenizer, other outputs."""
    built: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in built:
            built[preset] = _perturbed_copy(jax_checkpoint(preset), tmp_path_factory.mktemp(f"{preset}-jax-sft"))
        return built[preset]

    return get


def _perturbed_copy(source: Path, parent: Path) -> Path:
    """A copy of checkpoint `source` in `parent`/model with every weight perturbed."""
    directory = parent / "model"
    shutil.copytree(source, directory)
    tensors = load_file(directory / "model.safetensors")
    rng = np.random.default_rng(1)
    noisy = {k: (v + 0.03 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in tensors.items()}
    save_file(noisy, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def write_scratch_inputs(root: Path, repeats: int = 1, **sizes) -> None:
    """What a from-scratch training run of a tiny LLaMA reads, written into `root`: a
    trained tokenizer (tokenizer/), an HF config (config.json, `sizes` override its
    dimensions) and the built-in sentences as a corpus (corpus.txt, `repeats` times)."""
    tokenizer = tiny.train_tokenizer("sentencepiece")
    tokenizer.save_pretrained(root / "tokenizer")
    config = dict(
        model_type="llama", vocab_size=448, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    ) | sizes
    (root / "config.json").write_text(json.dumps(config))
    (root / "corpus.txt").write_text("\n".join(SENTENCES * repeats), encoding="utf-8")
