"""The BLOOM family (BLOOM, BLOOMZ): ALiBi attention with a fused per-head QKV
projection, LayerNorm on the embeddings, biases everywhere, tanh-GELU MLP and a head
tied to the embeddings."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pretty_jax.core.errors import ConfigError
from pretty_jax.models import hf_layouts, layers
from pretty_jax.models.conversion import CheckpointLayout, Flat, HFTensor, Matrix
from pretty_jax.models.hf_config import SpecialTokens, check_model_type, number, size, special_tokens_from_hf

MODEL_TYPES = ("bloom",)
# Where a BLOOM checkpoint keeps its layers: `transformer.h.{i}.*`.
_LAYERS = "transformer.h"


@dataclasses.dataclass(frozen=True)
class BloomConfig:
    """Architecture of a BLOOM model. `residual_post_layernorm` is HF's
    `apply_residual_connection_post_layernorm`."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float
    residual_post_layernorm: bool
    tie_word_embeddings: bool
    special_tokens: SpecialTokens

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_kv_heads(self) -> int:
        return self.num_heads

    @property
    def layer_windows(self) -> tuple[None, ...]:
        return (None,) * self.num_layers


def config_from_hf(
    hf: Mapping[str, Any], where: str, generation: Mapping[str, Any] | None = None
) -> BloomConfig:
    """Builds the architecture from an HF config dict (`where` names it in errors)."""
    check_model_type(hf, MODEL_TYPES, "BLOOM", where)
    hidden = size(hf, ["hidden_size", "n_embed"], where)
    num_heads = size(hf, ["n_head", "num_attention_heads"], where)
    if hidden % num_heads:
        raise ConfigError(f"{where}: hidden size {hidden} is not a multiple of {num_heads} heads")
    return BloomConfig(
        model_type="bloom",
        vocab_size=size(hf, ["vocab_size"], where),
        hidden_size=hidden,
        num_layers=size(hf, ["n_layer", "num_hidden_layers"], where),
        num_heads=num_heads,
        layer_norm_eps=number(hf, ["layer_norm_epsilon"], where, default=1e-5),
        residual_post_layernorm=bool(hf.get("apply_residual_connection_post_layernorm", False)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        special_tokens=special_tokens_from_hf(hf, generation, where),
    )


@functools.lru_cache(maxsize=None)
def alibi_slopes(num_heads: int) -> np.ndarray:
    """[N] float32 ALiBi slopes: a geometric sequence for the nearest power of two,
    interleaved extra slopes for the remaining heads (Press et al.; HF's layout)."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = np.float32(2 ** (-(2 ** -(math.log2(closest) - 3))))
    slopes = base ** np.arange(1, closest + 1, dtype=np.float32)
    if closest != num_heads:
        extra_base = np.float32(2 ** (-(2 ** -(math.log2(2 * closest) - 3))))
        remaining = min(closest, num_heads - closest)
        extra = extra_base ** np.arange(1, 2 * remaining + 1, 2, dtype=np.float32)
        slopes = np.concatenate([slopes, extra])
    return slopes.astype(np.float32)


def tanh_gelu(x: jax.Array) -> jax.Array:
    """BLOOM's GELU: the tanh approximation with Megatron's constants."""
    return x * 0.5 * (1.0 + jnp.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


class Attention(nnx.Module):
    def __init__(self, cfg: BloomConfig, *, dtype, rngs: nnx.Rngs):
        D, N, H = cfg.hidden_size, cfg.num_heads, cfg.head_dim
        # Fused projection in HF's per-head layout: for each head, its q, k and v.
        self.qkv_proj = layers.param(rngs, (N, 3, H, D), ("heads", None, "head_dim", "embed"), dtype)
        self.qkv_bias = layers.param(rngs, (N, 3, H), ("heads", None, "head_dim"), dtype, init="zeros")
        self.o_proj = layers.param(rngs, (D, N, H), ("embed", "heads", "head_dim"), dtype)
        self.o_bias = layers.param(rngs, (D,), ("embed",), dtype, init="zeros")
        self.num_heads = N
        self.head_dim = H

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        qkv_BTNCH = layers.dense(x_BTD, self.qkv_proj[...]) + self.qkv_bias[...]
        q_BTNH, k_BTNH, v_BTNH = (qkv_BTNCH[:, :, :, i] for i in range(3))
        k_BNSH, v_BNSH = layers.write_kv(cache_kv, k_BTNH, v_BTNH, write_slot)
        out_BTNH = layers.attend(
            q_BTNH,
            k_BNSH,
            v_BNSH,
            positions_BT,
            key_positions_BS,
            scale=self.head_dim**-0.5,
            alibi_slopes_N=alibi_slopes(self.num_heads),
        )
        y_BTD = layers.dense(out_BTNH, self.o_proj[...], num_in_axes=2) + self.o_bias[...]
        return y_BTD, (k_BNSH, v_BNSH)


class MLP(nnx.Module):
    def __init__(self, cfg: BloomConfig, *, dtype, rngs: nnx.Rngs):
        D, F = cfg.hidden_size, 4 * cfg.hidden_size
        self.up_proj = layers.param(rngs, (F, D), ("mlp", "embed"), dtype)
        self.up_bias = layers.param(rngs, (F,), ("mlp",), dtype, init="zeros")
        self.down_proj = layers.param(rngs, (D, F), ("embed", "mlp"), dtype)
        self.down_bias = layers.param(rngs, (D,), ("embed",), dtype, init="zeros")

    def __call__(self, x_BTD):
        h_BTF = tanh_gelu(layers.dense(x_BTD, self.up_proj[...]) + self.up_bias[...])
        return layers.dense(h_BTF, self.down_proj[...]) + self.down_bias[...]


class Block(nnx.Module):
    def __init__(self, cfg: BloomConfig, *, dtype, rngs: nnx.Rngs):
        self.attn_norm = layers.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.attn = Attention(cfg, dtype=dtype, rngs=rngs)
        self.mlp_norm = layers.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.mlp = MLP(cfg, dtype=dtype, rngs=rngs)
        self.residual_post_layernorm = cfg.residual_post_layernorm

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        normed_BTD = self.attn_norm(x_BTD)
        residual_BTD = normed_BTD if self.residual_post_layernorm else x_BTD
        h_BTD, kv = self.attn(normed_BTD, positions_BT, key_positions_BS, cache_kv, write_slot)
        x_BTD = residual_BTD + h_BTD
        normed_BTD = self.mlp_norm(x_BTD)
        residual_BTD = normed_BTD if self.residual_post_layernorm else x_BTD
        return residual_BTD + self.mlp(normed_BTD), kv


class Bloom(layers.CausalLM):
    """A BLOOM causal LM (call interface: `layers.CausalLM`)."""

    def __init__(self, cfg: BloomConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        layer_norm = lambda: layers.LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype, rngs=rngs)
        super().__init__(
            cfg,
            blocks=lambda: [Block(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)],
            final_norm=layer_norm,
            dtype=dtype,
            rngs=rngs,
        )
        self.embed_norm = layer_norm()

    def embed_tokens(self, tokens_BT: jax.Array) -> jax.Array:
        """The LayerNormed input embeddings [B, T, D]."""
        return self.embed_norm(super().embed_tokens(tokens_BT))


def _block_tensors(ours: str, hf: str) -> dict[str, HFTensor]:
    """One `BloomBlock`'s tensors: LayerNorms, the fused QKV projection and the MLP,
    each with its bias."""
    return {
        f"{ours}.attn_norm.scale": HFTensor(f"{hf}.input_layernorm.weight"),
        f"{ours}.attn_norm.bias": HFTensor(f"{hf}.input_layernorm.bias"),
        f"{ours}.mlp_norm.scale": HFTensor(f"{hf}.post_attention_layernorm.weight"),
        f"{ours}.mlp_norm.bias": HFTensor(f"{hf}.post_attention_layernorm.bias"),
        f"{ours}.attn.qkv_proj": HFTensor(f"{hf}.self_attention.query_key_value.weight", Matrix(3)),
        f"{ours}.attn.qkv_bias": HFTensor(f"{hf}.self_attention.query_key_value.bias", Flat()),
        f"{ours}.attn.o_proj": HFTensor(f"{hf}.self_attention.dense.weight", Matrix(1)),
        f"{ours}.attn.o_bias": HFTensor(f"{hf}.self_attention.dense.bias"),
        f"{ours}.mlp.up_proj": HFTensor(f"{hf}.mlp.dense_h_to_4h.weight", Matrix(1)),
        f"{ours}.mlp.up_bias": HFTensor(f"{hf}.mlp.dense_h_to_4h.bias"),
        f"{ours}.mlp.down_proj": HFTensor(f"{hf}.mlp.dense_4h_to_h.weight", Matrix(1)),
        f"{ours}.mlp.down_bias": HFTensor(f"{hf}.mlp.dense_4h_to_h.bias"),
    }


def checkpoint_layout(cfg: BloomConfig) -> CheckpointLayout:
    """Where each parameter lives in an HF `BloomForCausalLM` checkpoint. Keys may or
    may not carry the `transformer.` prefix (the original BigScience files do not)."""
    tensors = {
        "embed": HFTensor("transformer.word_embeddings.weight"),
        "embed_norm.scale": HFTensor("transformer.word_embeddings_layernorm.weight"),
        "embed_norm.bias": HFTensor("transformer.word_embeddings_layernorm.bias"),
        "final_norm.scale": HFTensor("transformer.ln_f.weight"),
        "final_norm.bias": HFTensor("transformer.ln_f.bias"),
        **hf_layouts.output_head_tensors(cfg.tie_word_embeddings),
        **hf_layouts.layer_tensors(cfg.num_layers, _LAYERS, _block_tensors),
    }
    aliases = tuple(
        (prefix, f"transformer.{prefix}")
        for prefix in ("word_embeddings.", "word_embeddings_layernorm.", "h.", "ln_f.")
    )
    return CheckpointLayout(
        tensors=tensors, aliases=aliases, tied=hf_layouts.tied_output_head(cfg.tie_word_embeddings),
        layer_prefix=_LAYERS,
    )
