"""Shared fixtures: tiny random-weight HF checkpoints, built once per test session.

`tiny_checkpoint` / `sft_stand_in` are built by transformers (torch), for the tests that
compare against it; `jax_checkpoint` / `jax_sft_stand_in` are the same presets built
without torch, for every other test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax.checkpoints import tiny


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
def sft_stand_in(tiny_checkpoint, tmp_path_factory):
    """`sft_stand_in(preset)` -> a copy of that tiny checkpoint with every weight
    perturbed: a second model of the same architecture and tokenizer, standing in for
    an SFT model."""
    built: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in built:
            built[preset] = _perturbed_copy(tiny_checkpoint(preset), tmp_path_factory.mktemp(f"{preset}-sft"))
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
    """`jax_sft_stand_in(preset)` -> `sft_stand_in` of the torch-free checkpoint."""
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
