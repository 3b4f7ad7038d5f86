"""Exporting in HF format: HF -> ours -> HF gives back the same tensors, and HF
transformers loads an exported model and computes our logits."""

from __future__ import annotations

import json

import jax
import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from pretty_jax.checkpoints import export, loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.batching import left_pad
from pretty_jax.models import Model, forward


@pytest.mark.parametrize("preset", ["llama", "llama3", "qwen2", "bloom", "gemma3"])
def test_hf_to_ours_to_hf_gives_identical_tensors_and_files(tiny_checkpoint, tmp_path, preset):
    source = tiny_checkpoint(preset)
    out = export.export_loaded(loading.load_model(source, "float32"), source, tmp_path / "out")
    original, exported = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    assert exported.keys() == original.keys()  # tied heads are not written twice
    for key, tensor in original.items():
        assert exported[key].dtype == tensor.dtype, key
        np.testing.assert_array_equal(exported[key], tensor, err_msg=key)
    with safe_open(out / "model.safetensors", framework="np") as f:
        assert f.metadata() == {"format": "pt"}
    config = json.loads((out / "config.json").read_text())
    assert config == json.loads((source / "config.json").read_text()) | {"dtype": "float32"}
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert json.loads((out / name).read_text()) == json.loads((source / name).read_text()), name


def _perturbed(model: Model, seed: int = 0) -> Model:
    """The model with every parameter changed, so an export cannot pass by copying."""
    leaves, treedef = jax.tree.flatten(model.params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [p * 1.1 + 0.02 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
    return Model(model.config, model.graphdef, jax.tree.unflatten(treedef, noisy))


@pytest.mark.parametrize("preset", ["llama", "bloom", "gemma3"])
def test_hf_transformers_loads_an_export_and_matches_our_logits(tiny_checkpoint, tmp_path, preset):
    source = tiny_checkpoint(preset)
    model = _perturbed(loading.load_model(source, "float32"))
    tokenizer = load_tokenizer(source)
    out = export.save_hf_checkpoint(
        tmp_path / "out", model.config, model.params,
        json.loads((source / "config.json").read_text()), tokenizer=tokenizer,
    )
    tokens, mask, positions = left_pad([tokenizer(s).input_ids for s in SENTENCES[:4]], pad_id=0)
    ours, _ = jax.jit(forward, static_argnums=0)(model.graphdef, model.params, tokens, positions, mask)
    theirs = HFReference(out).logits(tokens, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[real], theirs[real], rtol=1e-4, atol=1e-4)
    assert (out / "tokenizer.json").exists()
    assert load_tokenizer(out)(SENTENCES[0]).input_ids == tokenizer(SENTENCES[0]).input_ids


def test_bfloat16_export_stores_bfloat16_and_says_so(tiny_checkpoint, tmp_path):
    model = loading.load_model(tiny_checkpoint("qwen2"), "float32")
    out = export.export_loaded(model, tiny_checkpoint("qwen2"), tmp_path / "bf16", dtype="bfloat16")
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    tensors = load_file(out / "model.safetensors")
    original = load_file(tiny_checkpoint("qwen2") / "model.safetensors")
    for key, tensor in tensors.items():
        assert tensor.dtype == ml_dtypes.bfloat16, key
        np.testing.assert_array_equal(tensor, original[key].astype(ml_dtypes.bfloat16), err_msg=key)
    assert loading.load_model(out).dtype == np.dtype("bfloat16")


def test_export_refuses_to_replace_a_directory_unless_asked(tiny_checkpoint, tmp_path):
    model = loading.load_model(tiny_checkpoint("llama"), "float32")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="busy exists and is not empty"):
        export.export_loaded(model, tiny_checkpoint("llama"), tmp_path / "busy")
    export.export_loaded(model, tiny_checkpoint("llama"), tmp_path / "busy", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"  # replaced: the export's files, nothing else
    assert loading.load_model(tmp_path / "busy").config.num_layers == model.config.num_layers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no staging left behind
