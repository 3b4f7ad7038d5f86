"""Tiny random-weight Hugging Face checkpoints of every supported family.

They are made by transformers itself (PyTorch model, `save_pretrained`) with a real
tokenizer trained by `tokenizers` on a few multilingual sentences, so they exercise the
same files and code paths as a downloaded checkpoint. `build` needs torch; `build_jax`
writes the same presets without it (our own model, randomly initialised, saved by
`checkpoints.export`), for everything that does not compare against transformers.

    python -m pretty_jax.tiny --preset=llama --out_dir=/tmp/tiny-llama
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretty_jax.checkpoints.tokenizer import train_tokenizer
from pretty_jax.core.errors import MissingDependencyError, UserError

# Each preset exercises a different part of the families: grouped-query attention,
# tied heads, rope scaling, explicit head_dim, biases, sliding windows, ALiBi.
PRESETS: dict[str, dict[str, Any]] = {
    "llama": dict(
        model_type="llama", tokenizer="sentencepiece", hidden_size=64, intermediate_size=160,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
        max_position_embeddings=256,
    ),
    "llama3": dict(
        model_type="llama", tokenizer="sentencepiece", hidden_size=64, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, attention_bias=True,
        mlp_bias=True, tie_word_embeddings=True, max_position_embeddings=256,
        rope_parameters=dict(
            rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
            high_freq_factor=4.0, original_max_position_embeddings=32,
        ),
    ),
    "llama-linear": dict(
        model_type="llama", tokenizer="sentencepiece", hidden_size=48, intermediate_size=64,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, head_dim=16,
        max_position_embeddings=256, rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
    ),
    "mistral": dict(
        model_type="mistral", tokenizer="sentencepiece", hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, sliding_window=7,
        max_position_embeddings=256,
    ),
    "qwen2": dict(
        model_type="qwen2", tokenizer="bytelevel", hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        max_position_embeddings=256,
    ),
    "bloom": dict(
        model_type="bloom", tokenizer="bytelevel", hidden_size=64, n_layer=2, n_head=4,
    ),
    # Both layer types, a window shorter than the test prompts, distinct local/global
    # RoPE (the global one scaled), head_dim != hidden / heads != query_pre_attn_scalar.
    "gemma3": dict(
        model_type="gemma3_text", tokenizer="sentencepiece", hidden_size=64, intermediate_size=128,
        num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=1, head_dim=24,
        query_pre_attn_scalar=20, sliding_window=8, max_position_embeddings=256,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
        rope_parameters=dict(
            full_attention=dict(rope_type="linear", rope_theta=100000.0, factor=4.0),
            sliding_attention=dict(rope_type="default", rope_theta=1000.0),
        ),
    ),
}

def hf_config(preset: str, tokenizer) -> Any:
    """The transformers config object of a preset, sized to the tokenizer (vocabulary
    padded up to a multiple of 64, as real checkpoints do)."""
    from transformers import AutoConfig

    settings = dict(PRESETS[preset])
    settings.pop("tokenizer")
    model_type = settings.pop("model_type")
    vocab_size = -(-len(tokenizer) // 64) * 64
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return AutoConfig.for_model(model_type, vocab_size=vocab_size, **ids, **settings)


# The `architectures` entry `save_pretrained` would write for each model_type.
ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "bloom": "BloomForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
}


def randomize_(model, seed: int, stddev: float = 0.15) -> None:
    """Overwrites every parameter with seeded random values — norms around 1, biases
    around 0 but nonzero — so that a misplaced bias or norm changes the logits. Gemma's
    norms scale by (1 + weight), so their weights go around 0."""
    import torch

    norm_centre = 0.0 if model.config.model_type.startswith("gemma") else 1.0
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(model.named_parameters()):
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
            is_norm_scale = "norm" in name and name.endswith("weight") or "ln_f.weight" in name
            if is_norm_scale:
                tensor.copy_(norm_centre + 0.1 * noise)
            elif name.endswith("bias"):
                tensor.copy_(0.1 * noise)
            else:
                tensor.copy_(stddev * noise)


def build(preset: str, out_dir: str | Path, seed: int = 0, max_shard_size: str | None = None) -> Path:
    """Writes a tiny checkpoint of `preset` (model + tokenizer) to `out_dir`."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "building tiny HF checkpoints needs torch: pip install torch==2.13.0"
        ) from None
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(PRESETS[preset]["tokenizer"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config(preset, tokenizer), dtype=torch.float32)
    randomize_(model, seed)
    model.save_pretrained(out_dir, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_jax(preset: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Writes a tiny checkpoint of `preset` (model + tokenizer) to `out_dir` without
    torch: the preset's HF config, and our model's parameters drawn like `randomize_`
    does (norms around their centre, biases small but nonzero), saved as an HF
    checkpoint. Same architecture and tokenizer as `build`, not the same weights.

    Every parameter is drawn here, so only the model's shapes are needed: they come
    from `abstract_model`, which allocates nothing (an eager `init_model` of even
    these models takes seconds on a CPU, only to be overwritten)."""
    import jax.numpy as jnp
    import numpy as np

    from pretty_jax.checkpoints.export import flat_params, save_hf_checkpoint
    from pretty_jax.models import abstract_model, family_for

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    tokenizer = train_tokenizer(PRESETS[preset]["tokenizer"])
    hf = hf_config(preset, tokenizer).to_dict()
    hf["architectures"] = [ARCHITECTURES[hf["model_type"]]]
    generation = {
        key: hf[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id") if hf.get(key) is not None
    }
    where = f"tiny preset {preset!r}"
    config = family_for(hf, where).config_from_hf(hf, where, generation)
    _, params = abstract_model(config, jnp.float32)
    norm_centre = 0.0 if hf["model_type"].startswith("gemma") else 1.0
    rng = np.random.default_rng(seed)
    tensors = {}
    for path, value in sorted(flat_params(params).items()):
        leaf = path.rsplit(".", 1)[-1]
        noise = rng.standard_normal(value.shape, dtype=np.float32)
        if leaf == "scale":
            tensors[path] = norm_centre + 0.1 * noise
        elif "bias" in leaf:
            tensors[path] = 0.1 * noise
        else:
            tensors[path] = 0.15 * noise
    return save_hf_checkpoint(
        out_dir, config, tensors, hf, generation_config=generation, tokenizer=tokenizer, overwrite=True
    )
