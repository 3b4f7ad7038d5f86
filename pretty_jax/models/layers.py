"""Building blocks shared by every model family.

Parameter declaration (shape, dtype and logical axes in one place), norms, attention
over an explicit KV cache, and the loop that runs a stack of decoder blocks over it.

Dimension letters used in names and einsums:
  B batch, T new tokens in this call, S key slots (T without a cache, the cache length
  with one), D model width, N query heads, K key/value heads, G = N // K query heads per
  key/value head, H head width, F MLP width, V vocabulary.

Padding and positions, by a worked example. Two prompts, left-padded to T = 4:

    tokens          [[pad, pad, a, b], [c, d, e, f]]
    attention_mask  [[0,   0,   1, 1], [1, 1, 1, 1]]
    positions       [[0,   0,   0, 1], [0, 1, 2, 3]]

A token at position p attends to the keys of its own row whose position q satisfies
0 <= q <= p (and p - q < window for sliding-window layers). Pad tokens get key
position -1 and so are never attended to; the outputs at pad positions are finite but
meaningless. With a cache, the new tokens are written into slots
[cache.end, cache.end + T) of every row, so rows stay aligned: the next decode step of
both rows above writes slot 4 with positions [[2], [4]].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Masked attention scores get this value instead of -inf, so that a row with no visible
# key (a pad query) yields a uniform softmax instead of NaN.
_MASKED_SCORE = -0.7 * float(np.finfo(np.float32).max)


def param(
    rngs: nnx.Rngs,
    shape: Sequence[int],
    logical_axes: Sequence[str | None],
    dtype: jnp.dtype,
    init: Literal["normal", "ones", "zeros"] = "normal",
    stddev: float = 0.02,
) -> nnx.Param:
    """Declares one parameter: its shape, dtype, logical axes and initial value."""
    if len(shape) != len(logical_axes):
        raise ValueError(f"shape {shape} and logical axes {logical_axes} differ in rank")
    if init == "normal":
        value = stddev * jax.random.normal(rngs.params(), shape, jnp.float32)
    elif init == "ones":
        value = jnp.ones(shape, jnp.float32)
    else:
        value = jnp.zeros(shape, jnp.float32)
    return nnx.Param(value.astype(dtype), logical_axes=tuple(logical_axes))


class RMSNorm(nnx.Module):
    """LLaMA's RMSNorm: normalise in float32, cast back, then scale (HF's order)."""

    def __init__(self, width: int, eps: float, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.scale = param(rngs, (width,), ("embed",), dtype, init="ones")
        self.eps = eps

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        x = x_BTD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return self.scale[...] * x.astype(x_BTD.dtype)


# Gate activations of GatedMLP, by name (a string keeps the module hashable).
_ACTIVATIONS = {
    "silu": jax.nn.silu,
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}


class GatedMLP(nnx.Module):
    """down(act(gate(x)) * up(x)), optionally with biases: LLaMA's SwiGLU
    (`activation="silu"`) and Gemma's GeGLU (`"gelu_tanh"`, GELU's tanh approximation)."""

    def __init__(
        self, width: int, hidden: int, activation: str, bias: bool, *, dtype: jnp.dtype, rngs: nnx.Rngs
    ):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {', '.join(_ACTIVATIONS)}")
        D, F = width, hidden
        self.gate_proj = param(rngs, (F, D), ("mlp", "embed"), dtype)
        self.up_proj = param(rngs, (F, D), ("mlp", "embed"), dtype)
        self.down_proj = param(rngs, (D, F), ("embed", "mlp"), dtype)
        zeros = lambda shape, axes: param(rngs, shape, axes, dtype, init="zeros")
        self.gate_bias = zeros((F,), ("mlp",)) if bias else None
        self.up_bias = zeros((F,), ("mlp",)) if bias else None
        self.down_bias = zeros((D,), ("embed",)) if bias else None
        self.activation = activation

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        gate_BTF = dense(x_BTD, self.gate_proj[...])
        up_BTF = dense(x_BTD, self.up_proj[...])
        if self.gate_bias is not None:
            gate_BTF += self.gate_bias[...]
            up_BTF += self.up_bias[...]
        y_BTD = dense(_ACTIVATIONS[self.activation](gate_BTF) * up_BTF, self.down_proj[...])
        if self.down_bias is not None:
            y_BTD += self.down_bias[...]
        return y_BTD


class LayerNorm(nnx.Module):
    """Standard LayerNorm with bias, computed in float32."""

    def __init__(self, width: int, eps: float, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.scale = param(rngs, (width,), ("embed",), dtype, init="ones")
        self.bias = param(rngs, (width,), ("embed",), dtype, init="zeros")
        self.eps = eps

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        x = x_BTD.astype(jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        x = (x - mean) * jax.lax.rsqrt(var + self.eps)
        x = x * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return x.astype(x_BTD.dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    """Keys and values of every layer for a batch of left-aligned rows.

    keys, values: one [B, K, S, H] array per layer (heads before slots, so attention
      reads each head's keys contiguously), or [B, S, H] when the model has a single KV
      head: XLA would drop a size-1 head axis with a bitcast between the cache update
      and the attention matmul, and then copy every layer's cache at every decode step.
    positions: [B, S] int32, the position of the token held in each slot, -1 if the
      slot is empty or holds padding.
    end: [] int32, the first free slot (shared by all rows).
    """

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    positions: jax.Array
    end: jax.Array

    @classmethod
    def empty(
        cls,
        batch: int,
        max_len: int,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: jnp.dtype,
    ) -> "KVCache":
        shape = (batch, max_len, head_dim) if num_kv_heads == 1 else (batch, num_kv_heads, max_len, head_dim)
        return cls(
            keys=tuple(jnp.zeros(shape, dtype) for _ in range(num_layers)),
            values=tuple(jnp.zeros(shape, dtype) for _ in range(num_layers)),
            positions=jnp.full((batch, max_len), -1, jnp.int32),
            end=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.positions.shape[1]


def attend(
    q_BTNH: jax.Array,
    k_BKSH: jax.Array,
    v_BKSH: jax.Array,
    q_positions_BT: jax.Array,
    k_positions_BS: jax.Array,
    *,
    scale: float,
    window: int | None = None,
    alibi_slopes_N: np.ndarray | None = None,
) -> jax.Array:
    """Grouped-query attention with position-based causal (and sliding-window) masks.

    Keys and values are [B, K, S, H], or [B, S, H] for a single KV head (`KVCache`).
    Scores and softmax are float32. `alibi_slopes_N` adds slope * key position to
    the scores (BLOOM's ALiBi; softmax is shift-invariant per query, so this equals the
    slope * (key - query) distance form). Returns [B, T, N, H] in v's dtype.
    """
    batch, q_len, num_heads, head_dim = q_BTNH.shape
    one_head = k_BKSH.ndim == 3
    num_kv_heads = 1 if one_head else k_BKSH.shape[1]
    group = num_heads // num_kv_heads
    if one_head:
        scores_BKTGS = jnp.einsum(
            "btgh,bsh->btgs", q_BTNH, k_BKSH, preferred_element_type=jnp.float32
        )[:, None] * jnp.float32(scale)
    else:
        q_BTKGH = q_BTNH.reshape(batch, q_len, num_kv_heads, group, head_dim)
        scores_BKTGS = jnp.einsum(
            "btkgh,bksh->bktgs", q_BTKGH, k_BKSH, preferred_element_type=jnp.float32
        ) * jnp.float32(scale)
    if alibi_slopes_N is not None:
        slopes_KG = jnp.asarray(alibi_slopes_N, jnp.float32).reshape(num_kv_heads, group)
        k_pos_BS = k_positions_BS.astype(jnp.float32)
        scores_BKTGS += slopes_KG[None, :, None, :, None] * k_pos_BS[:, None, None, None, :]
    q_pos_BT1 = q_positions_BT[:, :, None]
    k_pos_B1S = k_positions_BS[:, None, :]
    visible_BTS = (k_pos_B1S >= 0) & (k_pos_B1S <= q_pos_BT1)
    if window is not None:
        visible_BTS &= q_pos_BT1 - k_pos_B1S < window
    scores_BKTGS = jnp.where(visible_BTS[:, None, :, None, :], scores_BKTGS, _MASKED_SCORE)
    probs_BKTGS = jax.nn.softmax(scores_BKTGS, axis=-1).astype(v_BKSH.dtype)
    if one_head:
        return jnp.einsum("btgs,bsh->btgh", probs_BKTGS[:, 0], v_BKSH)
    out_BKTGH = jnp.einsum("bktgs,bksh->bktgh", probs_BKTGS, v_BKSH)
    return out_BKTGH.transpose(0, 2, 1, 3, 4).reshape(batch, q_len, num_heads, head_dim)


def write_kv(
    cache_kv: tuple[jax.Array, jax.Array] | None,
    k_BTKH: jax.Array,
    v_BTKH: jax.Array,
    write_slot: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Returns the keys/values to attend over, [B, K, S, H] ([B, S, H] for a single KV
    head, as `KVCache` holds them): the new ones written into the cache's slots
    [write_slot, write_slot + T), or just the new ones without a cache."""
    if k_BTKH.shape[2] == 1:
        k_BKTH, v_BKTH = k_BTKH[:, :, 0], v_BTKH[:, :, 0]
    else:
        k_BKTH, v_BKTH = k_BTKH.transpose(0, 2, 1, 3), v_BTKH.transpose(0, 2, 1, 3)
    if cache_kv is None:
        return k_BKTH, v_BKTH
    cached_k, cached_v = cache_kv
    start = (0,) * (k_BKTH.ndim - 2) + (write_slot, 0)
    k = jax.lax.dynamic_update_slice(cached_k, k_BKTH.astype(cached_k.dtype), start)
    v = jax.lax.dynamic_update_slice(cached_v, v_BKTH.astype(cached_v.dtype), start)
    return k, v


def run_blocks(
    blocks: Sequence[nnx.Module],
    x_BTD: jax.Array,
    positions_BT: jax.Array,
    attention_mask_BT: jax.Array,
    cache: KVCache | None,
) -> tuple[jax.Array, KVCache | None]:
    """Runs decoder blocks in order, threading the KV cache through them.

    Each block is called as `block(x, positions, key_positions, cache_kv, write_slot)`
    and returns `(x, (keys, values))`.
    """
    token_positions_BT = jnp.where(attention_mask_BT.astype(bool), positions_BT, -1)
    token_positions_BT = token_positions_BT.astype(jnp.int32)
    if cache is None:
        key_positions_BS, write_slot = token_positions_BT, jnp.zeros((), jnp.int32)
    else:
        write_slot = cache.end
        key_positions_BS = jax.lax.dynamic_update_slice(
            cache.positions, token_positions_BT, (0, write_slot)
        )
    new_keys, new_values = [], []
    for i, block in enumerate(blocks):
        cache_kv = None if cache is None else (cache.keys[i], cache.values[i])
        x_BTD, (k, v) = block(x_BTD, positions_BT, key_positions_BS, cache_kv, write_slot)
        new_keys.append(k)
        new_values.append(v)
    if cache is None:
        return x_BTD, None
    new_cache = KVCache(
        keys=tuple(new_keys),
        values=tuple(new_values),
        positions=key_positions_BS,
        end=write_slot + x_BTD.shape[1],
    )
    return x_BTD, new_cache


def dense(
    x: jax.Array, w: jax.Array, num_in_axes: int = 1, out_dtype: jnp.dtype | None = None
) -> jax.Array:
    """x [..., *in] times an output-major weight [*out, *in] -> [..., *out].

    Written as one 2-D [M, I] x [O, I]^T matmul: weights keep torch's [out, in] layout,
    the one CPU GEMM kernels (XNNPACK) run fastest at decode batch sizes, and XLA needs
    no per-step weight transpose. `out_dtype` sets the accumulation/output dtype
    (float32 logits from bfloat16 weights).
    """
    in_shape = x.shape[x.ndim - num_in_axes :]
    out_shape = w.shape[: w.ndim - num_in_axes]
    if w.shape[w.ndim - num_in_axes :] != in_shape:
        raise ValueError(f"dense: input axes {in_shape} do not match weight {w.shape}")
    x_MI = x.reshape(-1, math.prod(in_shape))
    w_OI = w.reshape(math.prod(out_shape), -1)
    y_MO = jnp.einsum("mi,oi->mo", x_MI, w_OI, preferred_element_type=out_dtype)
    return y_MO.reshape(x.shape[: x.ndim - num_in_axes] + out_shape)


def output_head(
    rngs: nnx.Rngs, vocab_size: int, width: int, tied: bool, dtype: jnp.dtype
) -> nnx.Param | None:
    """The separate [V, D] output head, or None when it is tied to the embeddings."""
    return None if tied else param(rngs, (vocab_size, width), ("vocab", "embed"), dtype)


class CausalLMShape(Protocol):
    """The config fields `CausalLM` is sized by (every family config has them)."""

    vocab_size: int
    hidden_size: int
    tie_word_embeddings: bool


class CausalLM(nnx.Module):
    """What every family's model shares: embedding lookup, the stack of blocks, the
    call interface and the output head.

    A family passes its blocks (called as `run_blocks` says) and its final norm, and
    overrides `embed_tokens` when its embeddings are scaled or normed. `model(tokens, positions, attention_mask, cache)`
    -> (logits [B, T, V] float32, cache); `hidden_states` and `logits` split that call
    for callers that need only some positions' logits.
    """

    def __init__(
        self,
        cfg: "CausalLMShape",
        blocks: Callable[[], Sequence[nnx.Module]],
        final_norm: Callable[[], nnx.Module],
        *,
        dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ):
        """Declares `embed` [V, D], then the `blocks()` and the `final_norm()`, then the
        output head (this order fixes which random values each parameter starts from)."""
        self.config = cfg
        self.embed = param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), dtype)
        self.layers = nnx.List(blocks())
        self.final_norm = final_norm()
        self.lm_head = output_head(rngs, cfg.vocab_size, cfg.hidden_size, cfg.tie_word_embeddings, dtype)

    def embed_tokens(self, tokens_BT: jax.Array) -> jax.Array:
        """The input embeddings [B, T, D] of `tokens_BT`."""
        return jnp.take(self.embed[...], tokens_BT, axis=0)

    def hidden_states(
        self,
        tokens_BT: jax.Array,
        positions_BT: jax.Array,
        attention_mask_BT: jax.Array,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Final-normed hidden states [B, T, D] and the updated cache."""
        x_BTD = self.embed_tokens(tokens_BT)
        x_BTD, cache = run_blocks(self.layers, x_BTD, positions_BT, attention_mask_BT, cache)
        return self.final_norm(x_BTD), cache

    def logits(self, h_BTD: jax.Array) -> jax.Array:
        """Output logits [B, T, V] in float32 from the (tied or separate) [V, D] head."""
        head_VD = self.embed[...] if self.lm_head is None else self.lm_head[...]
        return dense(h_BTD, head_VD, out_dtype=jnp.float32)

    def __call__(self, tokens_BT, positions_BT, attention_mask_BT, cache=None):
        h_BTD, cache = self.hidden_states(tokens_BT, positions_BT, attention_mask_BT, cache)
        return self.logits(h_BTD), cache
