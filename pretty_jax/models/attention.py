"""Rotary grouped-query attention, as LLaMA and Gemma 3 share it.

Separate q/k/v/o projections (optional q/k/v and output biases, as LLaMA-family
checkpoints carry them), an optional per-head norm of queries and keys (Gemma 3), rotary
embeddings, the KV cache write and `layers.attend`. What differs between the families is
a constructor argument: the score scale, the sliding window, the RoPE and the biases.

Dimension letters as in `layers`.
"""

from __future__ import annotations

from typing import Callable, Protocol

import jax
from flax import nnx

from pretty_jax.models import layers
from pretty_jax.models.rope import RopeConfig, apply_rope, inverse_frequencies


class AttentionShape(Protocol):
    """The config fields attention is sized by (every family config has them)."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


class RotaryAttention(nnx.Module):
    """Grouped-query attention with rotary embeddings.

    Parameters: q_proj [N, H, D], k_proj and v_proj [K, H, D], o_proj [D, N, H];
    with `qkv_bias` q_bias [N, H], k_bias and v_bias [K, H]; with `out_bias` o_bias [D];
    with `qk_norm` (a factory of a norm over H) q_norm and k_norm, applied to the
    projected queries and keys before RoPE.
    """

    def __init__(
        self,
        cfg: AttentionShape,
        window: int | None,
        rope: RopeConfig,
        *,
        scale: float,
        qkv_bias: bool = False,
        out_bias: bool = False,
        qk_norm: Callable[[], nnx.Module] | None = None,
        dtype,
        rngs: nnx.Rngs,
    ):
        D, N, K, H = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = layers.param(rngs, (N, H, D), ("heads", "head_dim", "embed"), dtype)
        self.k_proj = layers.param(rngs, (K, H, D), ("kv_heads", "head_dim", "embed"), dtype)
        self.v_proj = layers.param(rngs, (K, H, D), ("kv_heads", "head_dim", "embed"), dtype)
        self.o_proj = layers.param(rngs, (D, N, H), ("embed", "heads", "head_dim"), dtype)
        zeros = lambda shape, axes: layers.param(rngs, shape, axes, dtype, init="zeros")
        self.q_bias = zeros((N, H), ("heads", "head_dim")) if qkv_bias else None
        self.k_bias = zeros((K, H), ("kv_heads", "head_dim")) if qkv_bias else None
        self.v_bias = zeros((K, H), ("kv_heads", "head_dim")) if qkv_bias else None
        self.o_bias = zeros((D,), ("embed",)) if out_bias else None
        self.q_norm = qk_norm() if qk_norm is not None else None
        self.k_norm = qk_norm() if qk_norm is not None else None
        self.rope = rope
        self.head_dim = H
        self.scale = scale
        self.window = window

    def _project_qkv(self, x_BTD: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries [B, T, N, H], keys and values [B, T, K, H], biased and normed, before RoPE."""
        q_BTNH = layers.dense(x_BTD, self.q_proj[...])
        k_BTKH = layers.dense(x_BTD, self.k_proj[...])
        v_BTKH = layers.dense(x_BTD, self.v_proj[...])
        if self.q_bias is not None:
            q_BTNH += self.q_bias[...]
            k_BTKH += self.k_bias[...]
            v_BTKH += self.v_bias[...]
        if self.q_norm is not None:
            q_BTNH, k_BTKH = self.q_norm(q_BTNH), self.k_norm(k_BTKH)
        return q_BTNH, k_BTKH, v_BTKH

    def __call__(self, x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot):
        """x [B, T, D] -> (y [B, T, D], the layer's keys and values [B, K, S, H])."""
        q_BTNH, k_BTKH, v_BTKH = self._project_qkv(x_BTD)
        inv_freq = inverse_frequencies(self.rope, self.head_dim)
        q_BTNH = apply_rope(q_BTNH, positions_BT, inv_freq)
        k_BTKH = apply_rope(k_BTKH, positions_BT, inv_freq)
        k_BKSH, v_BKSH = layers.write_kv(cache_kv, k_BTKH, v_BTKH, write_slot)
        out_BTNH = layers.attend(
            q_BTNH, k_BKSH, v_BKSH, positions_BT, key_positions_BS,
            scale=self.scale, window=self.window,
        )
        y_BTD = layers.dense(out_BTNH, self.o_proj[...], num_in_axes=2)
        if self.o_bias is not None:
            y_BTD += self.o_bias[...]
        return y_BTD, (k_BKSH, v_BKSH)
