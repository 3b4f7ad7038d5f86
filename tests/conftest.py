"""Shared fixtures: tiny random-weight HF checkpoints, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretty_jax import tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """`tiny_checkpoint(preset)` -> directory of that preset's HF checkpoint."""
    pytest.importorskip("torch", reason="tiny HF checkpoints are built with torch")
    built: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in built:
            built[preset] = tiny_checkpoints.build(preset, tmp_path_factory.mktemp(preset))
        return built[preset]

    return get
