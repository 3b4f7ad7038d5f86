"""The LLaMA family: LLaMA 1/2/3, Mistral and Qwen2, driven by the HF config.

Pre-norm decoder blocks with RMSNorm, rotary embeddings (default / linear / llama3
scaling), grouped-query attention with optional q/k/v(/o) biases, optional
sliding-window layers, a SwiGLU MLP and a tied or separate output head.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
from flax import nnx

from pretty_jax.core.errors import ConfigError
from pretty_jax.models import hf_layouts, layers
from pretty_jax.models.attention import RotaryAttention
from pretty_jax.models.conversion import CheckpointLayout, Flat, HFTensor
from pretty_jax.models.hf_config import (
    GroupedQueryConfig,
    check_model_type,
    grouped_query_fields,
    size,
    windows_of_layer_types,
)
from pretty_jax.models.rope import RopeConfig, rope_config_from_hf

MODEL_TYPES = ("llama", "mistral", "qwen2")


@dataclasses.dataclass(frozen=True)
class LlamaConfig(GroupedQueryConfig):
    """Architecture of a LLaMA-family model (its shared fields: `GroupedQueryConfig`).

    rope: the rotary embedding of every layer.
    qkv_bias / out_bias / mlp_bias: which projections carry biases (LLaMA's
      `attention_bias` sets the first two, Qwen2 has the first only).
    """

    rope: RopeConfig
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool


def _layer_windows(hf: Mapping[str, Any], num_layers: int, where: str) -> tuple[int | None, ...]:
    model_type = hf["model_type"]
    window = hf.get("sliding_window")
    if model_type == "qwen2" and not hf.get("use_sliding_window", False):
        window = None
    if window is None:
        return (None,) * num_layers
    layer_types = hf.get("layer_types")
    window = size(hf, ["sliding_window"], where)
    if layer_types is None and model_type == "qwen2":
        first = size(hf, ["max_window_layers"], where, default=num_layers, minimum=0)
        layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(num_layers)]
    if layer_types is None:
        return (window,) * num_layers
    return windows_of_layer_types(layer_types, num_layers, window, where)


def config_from_hf(
    hf: Mapping[str, Any], where: str, generation: Mapping[str, Any] | None = None
) -> LlamaConfig:
    """Builds the architecture from an HF config dict (`where` names it in errors)."""
    model_type = check_model_type(hf, MODEL_TYPES, "LLaMA-family", where)
    activation = hf.get("hidden_act", "silu")
    if activation != "silu":
        raise ConfigError(f"{where}: hidden_act {activation!r} is not supported (only 'silu')")
    per_head = size(hf, ["hidden_size"], where) // size(hf, ["num_attention_heads"], where)
    shared = grouped_query_fields(hf, where, generation, defaults={
        "num_key_value_heads": None, "head_dim": per_head, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 2048, "tie_word_embeddings": False,
    })
    attention_bias = bool(hf.get("attention_bias", False))
    return LlamaConfig(
        model_type=model_type,
        **shared,
        rope=rope_config_from_hf(hf, where),
        qkv_bias=model_type == "qwen2" or attention_bias,
        out_bias=model_type != "qwen2" and attention_bias,
        mlp_bias=bool(hf.get("mlp_bias", False)),
        layer_windows=_layer_windows(hf, shared["num_layers"], where),
    )


class Block(nnx.Module):
    def __init__(self, cfg: LlamaConfig, window: int | None, *, dtype, rngs: nnx.Rngs):
        self.attn_norm = layers.RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype=dtype, rngs=rngs)
        self.attn = RotaryAttention(
            cfg, window, cfg.rope, scale=cfg.head_dim**-0.5, qkv_bias=cfg.qkv_bias,
            out_bias=cfg.out_bias, dtype=dtype, rngs=rngs,
        )
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
        super().__init__(
            cfg,
            blocks=lambda: [Block(cfg, window, dtype=dtype, rngs=rngs) for window in cfg.layer_windows],
            final_norm=lambda: layers.RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype=dtype, rngs=rngs),
            dtype=dtype,
            rngs=rngs,
        )


def _block_tensors(cfg: LlamaConfig) -> hf_layouts.BlockTensors:
    """One `LlamaDecoderLayer`'s tensors, biases as the config says."""

    def block_tensors(ours: str, hf: str) -> dict[str, HFTensor]:
        tensors = {
            f"{ours}.attn_norm.scale": HFTensor(f"{hf}.input_layernorm.weight"),
            f"{ours}.mlp_norm.scale": HFTensor(f"{hf}.post_attention_layernorm.weight"),
            **hf_layouts.attention_projections(ours, hf),
            **hf_layouts.gated_mlp_projections(ours, hf),
        }
        if cfg.qkv_bias:
            for name in ("q", "k", "v"):
                tensors[f"{ours}.attn.{name}_bias"] = HFTensor(f"{hf}.self_attn.{name}_proj.bias", Flat())
        if cfg.out_bias:
            tensors[f"{ours}.attn.o_bias"] = HFTensor(f"{hf}.self_attn.o_proj.bias")
        if cfg.mlp_bias:
            for name in ("gate", "up", "down"):
                tensors[f"{ours}.mlp.{name}_bias"] = HFTensor(f"{hf}.mlp.{name}_proj.bias")
        return tensors

    return block_tensors


def checkpoint_layout(cfg: LlamaConfig) -> CheckpointLayout:
    """Where each parameter lives in an HF `LlamaForCausalLM`-style checkpoint."""
    return hf_layouts.decoder_layout(
        cfg.num_layers, cfg.tie_word_embeddings, _block_tensors(cfg),
        ignored=(r"\.rotary_emb\.inv_freq$",),
    )
