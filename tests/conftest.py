"""Shared fixtures: tiny random-weight HF checkpoints, built once per test session."""

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
            directory = tmp_path_factory.mktemp(f"{preset}-sft") / "model"
            shutil.copytree(tiny_checkpoint(preset), directory)
            tensors = load_file(directory / "model.safetensors")
            rng = np.random.default_rng(1)
            noisy = {k: (v + 0.03 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in tensors.items()}
            save_file(noisy, directory / "model.safetensors", metadata={"format": "pt"})
            built[preset] = directory
        return built[preset]

    return get
