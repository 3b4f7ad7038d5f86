"""The LLaMA family: LLaMA 1/2/3, Mistral and Qwen2, driven by the HF config.

Pre-norm decoder blocks with RMSNorm, rotary embeddings (default / linear / llama3
scaling), grouped-query attention with optional q/k/v(/o) biases, optional
sliding-window layers, a SwiGLU MLP and a tied or separate output head.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from pretty_jax.core.errors import ConfigError
from pretty_jax.models import layers
from pretty_jax.models.conversion import CheckpointLayout, Flat, HFTensor, Matrix
from pretty_jax.models.hf_config import SpecialTokens, require, special_tokens_from_hf
from pretty_jax.models.rope import (
    RopeConfig,
    apply_rope,
    inverse_frequencies,
    rope_config_from_hf,
)

MODEL_TYPES = ("llama", "mistral", "qwen2")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture of a LLaMA-family model.

    layer_windows: per layer, the sliding-window size or None for full attention.
    qkv_bias / out_bias / mlp_bias: which projections carry biases (LLaMA's
      `attention_bias` sets the first two, Qwen2 has the first only).
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope: RopeConfig
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    layer_windows: tuple[int | None, ...]
    special_tokens: SpecialTokens


def _layer_windows(hf: Mapping[str, Any], num_layers: int, where: str) -> tuple[int | None, ...]:
    model_type = hf["model_type"]
    window = hf.get("sliding_window")
    if model_type == "qwen2" and not hf.get("use_sliding_window", False):
        window = None
    if window is None:
        return (None,) * num_layers
    layer_types = hf.get("layer_types")
    if layer_types is None and model_type == "qwen2":
        first = int(hf.get("max_window_layers", num_layers))
        layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(num_layers)]
    if layer_types is None:
        return (int(window),) * num_layers
    if len(layer_types) != num_layers:
        raise ConfigError(f"{where}: {len(layer_types)} layer_types for {num_layers} layers")
    return tuple(int(window) if t == "sliding_attention" else None for t in layer_types)


def config_from_hf(
    hf: Mapping[str, Any], where: str, generation: Mapping[str, Any] | None = None
) -> LlamaConfig:
    """Builds the architecture from an HF config dict (`where` names it in errors)."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"{where}: model_type {model_type!r} is not a LLaMA-family type")
    activation = hf.get("hidden_act", "silu")
    if activation != "silu":
        raise ConfigError(f"{where}: hidden_act {activation!r} is not supported (only 'silu')")
    hidden = int(require(hf, ["hidden_size"], where))
    num_heads = int(require(hf, ["num_attention_heads"], where))
    num_layers = int(require(hf, ["num_hidden_layers"], where))
    num_kv_heads = int(hf.get("num_key_value_heads") or num_heads)
    if num_heads % num_kv_heads:
        raise ConfigError(
            f"{where}: num_attention_heads={num_heads} is not a multiple of "
            f"num_key_value_heads={num_kv_heads}"
        )
    attention_bias = bool(hf.get("attention_bias", False))
    return LlamaConfig(
        model_type=model_type,
        vocab_size=int(require(hf, ["vocab_size"], where)),
        hidden_size=hidden,
        intermediate_size=int(require(hf, ["intermediate_size"], where)),
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=int(hf.get("head_dim") or hidden // num_heads),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope=rope_config_from_hf(hf, where),
        max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2" or attention_bias,
        out_bias=model_type != "qwen2" and attention_bias,
        mlp_bias=bool(hf.get("mlp_bias", False)),
        layer_windows=_layer_windows(hf, num_layers, where),
        special_tokens=special_tokens_from_hf(hf, generation),
    )


class Attention(nnx.Module):
    def __init__(self, cfg: LlamaConfig, window: int | None, *, dtype, rngs: nnx.Rngs):
        D, N, K, H = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = layers.param(rngs, (N, H, D), ("heads", "head_dim", "embed"), dtype)
        self.k_proj = layers.param(rngs, (K, H, D), ("kv_heads", "head_dim", "embed"), dtype)
        self.v_proj = layers.param(rngs, (K, H, D), ("kv_heads", "head_dim", "embed"), dtype)
        self.o_proj = layers.param(rngs, (D, N, H), ("embed", "heads", "head_dim"), dtype)
        bias = lambda shape, axes: layers.param(rngs, shape, axes, dtype, init="zeros")
        self.q_bias = bias((N, H), ("heads", "head_dim")) if cfg.qkv_bias else None
        self.k_bias = bias((K, H), ("kv_heads", "head_dim")) if cfg.qkv_bias else None
        self.v_bias = bias((K, H), ("kv_heads", "head_dim")) if cfg.qkv_bias else None
        self.o_bias = bias((D,), ("embed",)) if cfg.out_bias else None
        self.rope = cfg.rope
        self.head_dim = H
        self.window = window

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        q_BTNH = layers.dense(x_BTD, self.q_proj[...])
        k_BTKH = layers.dense(x_BTD, self.k_proj[...])
        v_BTKH = layers.dense(x_BTD, self.v_proj[...])
        if self.q_bias is not None:
            q_BTNH += self.q_bias[...]
            k_BTKH += self.k_bias[...]
            v_BTKH += self.v_bias[...]
        inv_freq = inverse_frequencies(self.rope, self.head_dim)
        q_BTNH = apply_rope(q_BTNH, positions_BT, inv_freq)
        k_BTKH = apply_rope(k_BTKH, positions_BT, inv_freq)
        k_BKSH, v_BKSH = layers.write_kv(cache_kv, k_BTKH, v_BTKH, write_slot)
        out_BTNH = layers.attend(
            q_BTNH,
            k_BKSH,
            v_BKSH,
            positions_BT,
            key_positions_BS,
            scale=self.head_dim**-0.5,
            window=self.window,
        )
        y_BTD = layers.dense(out_BTNH, self.o_proj[...], num_in_axes=2)
        if self.o_bias is not None:
            y_BTD += self.o_bias[...]
        return y_BTD, (k_BKSH, v_BKSH)


class Block(nnx.Module):
    def __init__(self, cfg: LlamaConfig, window: int | None, *, dtype, rngs: nnx.Rngs):
        self.attn_norm = layers.RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype=dtype, rngs=rngs)
        self.attn = Attention(cfg, window, dtype=dtype, rngs=rngs)
        self.mlp_norm = layers.RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype=dtype, rngs=rngs)
        self.mlp = layers.GatedMLP(
            cfg.hidden_size, cfg.intermediate_size, "silu", cfg.mlp_bias, dtype=dtype, rngs=rngs
        )

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        h_BTD, kv = self.attn(
            self.attn_norm(x_BTD), positions_BT, key_positions_BS, cache_kv, write_slot
        )
        x_BTD = x_BTD + h_BTD
        x_BTD = x_BTD + self.mlp(self.mlp_norm(x_BTD))
        return x_BTD, kv


class Llama(layers.CausalLM):
    """A LLaMA-family causal LM (call interface: `layers.CausalLM`)."""

    def __init__(self, cfg: LlamaConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.config = cfg
        self.embed = layers.param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), dtype)
        self.layers = nnx.List(
            [Block(cfg, window, dtype=dtype, rngs=rngs) for window in cfg.layer_windows]
        )
        self.final_norm = layers.RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype=dtype, rngs=rngs)
        self.lm_head = layers.output_head(
            rngs, cfg.vocab_size, cfg.hidden_size, cfg.tie_word_embeddings, dtype
        )

    def hidden_states(
        self,
        tokens_BT: jax.Array,
        positions_BT: jax.Array,
        attention_mask_BT: jax.Array,
        cache: layers.KVCache | None = None,
    ) -> tuple[jax.Array, layers.KVCache | None]:
        """Final-normed hidden states [B, T, D] and the updated cache."""
        x_BTD = jnp.take(self.embed[...], tokens_BT, axis=0)
        x_BTD, cache = layers.run_blocks(self.layers, x_BTD, positions_BT, attention_mask_BT, cache)
        return self.final_norm(x_BTD), cache


def checkpoint_layout(cfg: LlamaConfig) -> CheckpointLayout:
    """Where each parameter lives in an HF `LlamaForCausalLM`-style checkpoint."""
    tensors = {"embed": HFTensor("model.embed_tokens.weight"), "final_norm.scale": HFTensor("model.norm.weight")}
    if not cfg.tie_word_embeddings:
        tensors["lm_head"] = HFTensor("lm_head.weight")
    for i in range(cfg.num_layers):
        ours, hf = f"layers.{i}", f"model.layers.{i}"
        tensors |= {
            f"{ours}.attn_norm.scale": HFTensor(f"{hf}.input_layernorm.weight"),
            f"{ours}.mlp_norm.scale": HFTensor(f"{hf}.post_attention_layernorm.weight"),
            f"{ours}.attn.q_proj": HFTensor(f"{hf}.self_attn.q_proj.weight", Matrix(2)),
            f"{ours}.attn.k_proj": HFTensor(f"{hf}.self_attn.k_proj.weight", Matrix(2)),
            f"{ours}.attn.v_proj": HFTensor(f"{hf}.self_attn.v_proj.weight", Matrix(2)),
            f"{ours}.attn.o_proj": HFTensor(f"{hf}.self_attn.o_proj.weight", Matrix(1)),
            f"{ours}.mlp.gate_proj": HFTensor(f"{hf}.mlp.gate_proj.weight", Matrix(1)),
            f"{ours}.mlp.up_proj": HFTensor(f"{hf}.mlp.up_proj.weight", Matrix(1)),
            f"{ours}.mlp.down_proj": HFTensor(f"{hf}.mlp.down_proj.weight", Matrix(1)),
        }
        if cfg.qkv_bias:
            for name in ("q", "k", "v"):
                tensors[f"{ours}.attn.{name}_bias"] = HFTensor(f"{hf}.self_attn.{name}_proj.bias", Flat())
        if cfg.out_bias:
            tensors[f"{ours}.attn.o_bias"] = HFTensor(f"{hf}.self_attn.o_proj.bias")
        if cfg.mlp_bias:
            for name in ("gate", "up", "down"):
                tensors[f"{ours}.mlp.{name}_bias"] = HFTensor(f"{hf}.mlp.{name}_proj.bias")
    return CheckpointLayout(
        tensors=tensors,
        ignored=(r"\.rotary_emb\.inv_freq$",),
        tied=(("lm_head.weight", "embed"),) if cfg.tie_word_embeddings else (),
    )
