"""Every family's logits equal HF transformers' on tiny random checkpoints: with left
padding, with the KV cache, and in bfloat16 close to float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tiny import PRESETS
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.batching import left_pad
from pretty_jax.models import forward, new_cache

run = jax.jit(forward, static_argnums=0)


def _batch(directory, sentences=SENTENCES[:5]):
    tokenizer = load_tokenizer(directory)
    return left_pad([tokenizer(s).input_ids for s in sentences], pad_id=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_logits_match_hf_with_left_padding(tiny_checkpoint, preset):
    directory = tiny_checkpoint(preset)
    tokens, mask, positions = _batch(directory)
    assert (mask == 0).any(), "the batch must contain padding"
    reference = HFReference(directory).logits(tokens, mask)
    model = loading.load_model(directory, "float32")
    ours, _ = run(model.graphdef, model.params, tokens, positions, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[real], reference[real], atol=1e-4, rtol=1e-4)
    assert np.abs(reference[real]).max() > 1.0, "logits too flat to prove anything"


@pytest.mark.parametrize("preset", PRESETS)
def test_cached_steps_equal_full_forward(tiny_checkpoint, preset):
    """Prefill a prefix, then feed one token per step: the same logits as one pass."""
    model = loading.load_model(tiny_checkpoint(preset), "float32")
    tokens, mask, positions = _batch(tiny_checkpoint(preset))
    full, _ = run(model.graphdef, model.params, tokens, positions, mask)
    batch, length = tokens.shape
    split = length - 6
    cache = new_cache(model.config, batch, length + 3, jnp.float32)
    prefill, cache = run(
        model.graphdef, model.params, tokens[:, :split], positions[:, :split], mask[:, :split], cache
    )
    steps = [prefill]
    for t in range(split, length):
        logits, cache = run(
            model.graphdef, model.params, tokens[:, t : t + 1], positions[:, t : t + 1],
            mask[:, t : t + 1], cache,
        )
        steps.append(logits)
    assert int(cache.end) == length
    cached = np.concatenate([np.asarray(s) for s in steps], axis=1)
    real = mask.astype(bool)
    np.testing.assert_allclose(cached[real], np.asarray(full)[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "preset,windows",
    [("mistral", (7, 7)), ("gemma3", (8, 8, None, 8, 8, None))],
)
def test_sliding_window_changes_logits_beyond_the_window(tiny_checkpoint, preset, windows):
    """The windows (Mistral's 7, Gemma 3's 8 on its sliding layers) are shorter than the
    prompts: dropping them must matter, so the parity above really exercises them."""
    import dataclasses

    from pretty_jax.models import abstract_model

    model = loading.load_model(tiny_checkpoint(preset), "float32")
    assert model.config.layer_windows == windows
    unwindowed = dataclasses.replace(model.config, layer_windows=(None,) * len(windows))
    graphdef, _ = abstract_model(unwindowed, jnp.float32)
    tokens, mask, positions = _batch(tiny_checkpoint(preset))
    windowed, _ = run(model.graphdef, model.params, tokens, positions, mask)
    full, _ = run(graphdef, model.params, tokens, positions, mask)
    real = mask.astype(bool)
    window = min(w for w in windows if w is not None)
    early = real & (positions < window)
    late = real & (positions >= window)
    np.testing.assert_allclose(np.asarray(windowed)[early], np.asarray(full)[early], atol=1e-5)
    assert np.abs(np.asarray(windowed)[late] - np.asarray(full)[late]).max() > 1e-2


@pytest.mark.parametrize("preset", ["llama", "bloom", "gemma3"])
def test_bfloat16_params_give_float32_logits_close_to_float32(tiny_checkpoint, preset):
    directory = tiny_checkpoint(preset)
    tokens, mask, positions = _batch(directory)
    f32 = loading.load_model(directory, "float32")
    bf16 = loading.load_model(directory, "bfloat16")
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(bf16.params))
    ref, _ = run(f32.graphdef, f32.params, tokens, positions, mask)
    low, _ = run(bf16.graphdef, bf16.params, tokens, positions, mask)
    assert low.dtype == jnp.float32
    real = mask.astype(bool)
    top1 = np.mean(np.asarray(ref)[real].argmax(-1) == np.asarray(low)[real].argmax(-1))
    assert top1 > 0.9
    assert np.abs(np.asarray(ref)[real] - np.asarray(low)[real]).max() < 0.5
