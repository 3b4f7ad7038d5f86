"""Gemma 3 specifics: configs read as transformers reads them (old and new RoPE forms,
layer patterns), the language model of a multimodal `gemma3` checkpoint, and clear
refusals of what we do not implement."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax.checkpoints import export, loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tiny import randomize_
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import CheckpointError, ConfigError, UserError
from pretty_jax.engine.batching import left_pad
from pretty_jax.models import forward, gemma3
from pretty_jax.models.rope import inverse_frequencies

torch = pytest.importorskip("torch")

# An older (transformers 4) config: global RoPE as rope_theta + rope_scaling, local base
# as rope_local_base_freq, layers from sliding_window_pattern; most keys left default.
OLD_STYLE = {
    "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 8,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 12,
    "sliding_window_pattern": 4, "rope_theta": 500000.0, "rope_local_base_freq": 5000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "vocab_size": 128,
}


def test_old_style_config_reads_as_transformers_reads_it():
    from transformers import Gemma3TextConfig
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

    ours = gemma3.config_from_hf(OLD_STYLE, "config.json")
    theirs = Gemma3TextConfig(**{k: v for k, v in OLD_STYLE.items() if k != "model_type"})
    assert ours.layer_windows == tuple(
        12 if t == "sliding_attention" else None for t in theirs.layer_types
    ) == (12, 12, 12, None) * 2
    rotary = Gemma3RotaryEmbedding(theirs)
    for layer_type, rope in (("full_attention", ours.layer_ropes[3]), ("sliding_attention", ours.layer_ropes[0])):
        expected = getattr(rotary, f"{layer_type}_inv_freq").numpy()
        np.testing.assert_allclose(inverse_frequencies(rope, 16), expected, rtol=1e-6, err_msg=layer_type)
    assert [rope.rope_type for rope in ours.layer_ropes] == ["default"] * 3 + ["linear"] + ["default"] * 3 + ["linear"]
    assert (ours.query_pre_attn_scalar, ours.tie_word_embeddings) == (256, True)  # HF defaults
    assert ours.special_tokens.eos_token_ids == (1,) and ours.special_tokens.bos_token_id == 2


@pytest.mark.parametrize(
    "change,message",
    [
        ({"final_logit_softcapping": 30.0}, "final_logit_softcapping=30.0 is not supported"),
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping=50.0 is not supported"),
        ({"hidden_activation": "gelu"}, "hidden_activation 'gelu' is not supported"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention=true is not supported"),
        ({"layer_types": ["chunked_attention"] * 8}, r"layer_types \['chunked_attention'\] are not supported"),
    ],
)
def test_unsupported_settings_are_refused_by_key(change, message):
    with pytest.raises(ConfigError, match=f"config.json: {message}"):
        gemma3.config_from_hf(OLD_STYLE | change, "config.json")


@pytest.fixture(scope="module")
def multimodal(tiny_checkpoint, tmp_path_factory):
    """A tiny `Gemma3ForConditionalGeneration` checkpoint (SigLIP vision tower and
    projector included) whose language model is the tiny gemma3 preset's shape."""
    from transformers import AutoModelForCausalLM, Gemma3Config

    text = tiny_checkpoint("gemma3")
    text_config = json.loads((text / "config.json").read_text())
    vision = dict(
        model_type="siglip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, image_size=28, patch_size=14,
    )
    vocab = text_config["vocab_size"]
    config = Gemma3Config(
        text_config=text_config, vision_config=vision, mm_tokens_per_image=4,
        boi_token_index=vocab - 3, eoi_token_index=vocab - 2, image_token_index=vocab - 1,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize_(model, seed=1)
    directory = tmp_path_factory.mktemp("gemma3-multimodal")
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(text / name, directory / name)
    return directory


def _logits(model, directory):
    tokenizer = load_tokenizer(directory)
    tokens, mask, positions = left_pad([tokenizer(s).input_ids for s in SENTENCES[:4]], pad_id=0)
    logits, _ = jax.jit(forward, static_argnums=0)(model.graphdef, model.params, tokens, positions, mask)
    return np.asarray(logits), tokens, mask


def test_multimodal_checkpoint_language_model_matches_hf(multimodal):
    names = load_file(multimodal / "model.safetensors").keys()
    assert any(k.startswith("vision_tower.") for k in names)
    assert any(k.startswith("multi_modal_projector.") for k in names)
    model = loading.load_model(multimodal, "float32")
    assert model.config.model_type == "gemma3" and model.config.layer_windows == (8, 8, None) * 2
    ours, tokens, mask = _logits(model, multimodal)
    theirs = HFReference(multimodal).logits(tokens, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4, rtol=1e-4)


def test_multimodal_checkpoint_under_transformers_5_names_loads_the_same(multimodal, tmp_path):
    """transformers 5 names the language model `model.language_model.*` at run time; a
    checkpoint written with those names reads the same. Unknown tensors stay errors."""
    directory = tmp_path / "renamed"
    shutil.copytree(multimodal, directory)
    tensors = load_file(directory / "model.safetensors")
    renamed = {
        k.replace("language_model.model.", "model.language_model.").replace("vision_tower.", "model.vision_tower."): v
        for k, v in tensors.items()
    }
    assert any(k.startswith("model.language_model.layers.") for k in renamed)
    save_file(renamed, directory / "model.safetensors", metadata={"format": "pt"})
    original, _, _ = _logits(loading.load_model(multimodal, "float32"), multimodal)
    reloaded, _, _ = _logits(loading.load_model(directory, "float32"), directory)
    np.testing.assert_array_equal(original, reloaded)
    save_file(renamed | {"model.audio_tower.weight": np.zeros(3, np.float32)}, directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unmapped\) \(1\):\n    model.audio_tower.weight"):
        loading.load_model(directory, "float32")


def test_multimodal_export_is_refused_clearly(multimodal, tmp_path):
    model = loading.load_model(multimodal, "float32")
    with pytest.raises(UserError, match="multimodal gemma3 checkpoint"):
        export.export_loaded(model, multimodal, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_lora_training_runs_and_hf_loads_the_merged_export(tiny_checkpoint, tmp_path):
    """Training works through the checkpoint layout: LoRA on q/v, loss falls, and the
    exported merged model is what HF transformers computes."""
    from pretty_jax.training import TrainSettings, data, model_setup, optim
    from pretty_jax.training import step as step_lib

    directory = tiny_checkpoint("gemma3")
    settings = TrainSettings(
        output_dir="unused", train_file="unused", init=str(directory), warmup_steps=0, train_steps=20,
        lora_rank=4, lora_alpha=8.0, learning_rate=1e-2,
    )
    start = model_setup.load_starting_model(settings, None)
    model, factors, frozen = model_setup.split_trainable(settings, start, None)
    assert sorted(factors) == [f"layers.{i}.attn.{p}_proj" for i in range(6) for p in ("q", "v")]
    tokenizer = load_tokenizer(directory)
    packed = data.pack_documents(tokenizer(list(SENTENCES[:4]))["input_ids"], tokenizer.eos_token_id, 0, 24)
    batch = data.micro_batches(packed.take(np.arange(4)), 1)
    optimizer = optim.make_optimizer(settings)
    state, train_step = step_lib.initial_state(factors, optimizer), step_lib.make_train_step(model, optimizer)
    losses = []
    for _ in range(10):
        state, metrics = train_step(state, frozen, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.8 * losses[0], losses
    merged = jax.device_get(model_setup.merged_params(model, state.trainable, frozen))
    out = export.save_hf_checkpoint(
        tmp_path / "hf", start.config, merged, start.hf_config, tokenizer_dir=directory
    )
    ours, tokens, mask = _logits(loading.load_model(out, "float32"), out)
    theirs = HFReference(out).logits(tokens, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4, rtol=1e-4)
    original, _, _ = _logits(loading.load_model(directory, "float32"), directory)
    assert np.abs(ours[real] - original[real]).max() > 1e-2  # the export holds the trained weights
