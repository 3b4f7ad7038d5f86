"""How the next token is chosen: tiny frozen strategies.

`Greedy` and `Sampling` pick one token per row from float32 logits; `BeamSearch` only
carries its settings (the beam loop lives in `beam_search.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from pretty_jax.core.errors import SettingError


def first_argmax(logits_BV: jax.Array) -> jax.Array:
    """[B] int32 `jnp.argmax(logits_BV, -1)`: the first maximum, or the first NaN of a
    row that holds one. Computed as a max, then the first index equal to it (plain
    vectorised reductions, several times faster on CPU than argmax's paired
    value-index reduction over a large vocabulary)."""
    vocab = logits_BV.shape[-1]
    index_V = jnp.arange(vocab, dtype=jnp.int32)
    nan_BV = jnp.isnan(logits_BV)
    max_B1 = jnp.max(jnp.where(nan_BV, -jnp.inf, logits_BV), axis=-1, keepdims=True)
    first_B = jnp.min(jnp.where(logits_BV == max_B1, index_V, vocab), axis=-1)
    first_nan_B = jnp.min(jnp.where(nan_BV, index_V, vocab), axis=-1)
    return jnp.where(first_nan_B < vocab, first_nan_B, first_B)


@dataclasses.dataclass(frozen=True)
class Greedy:
    def next_token(self, logits_BV: jax.Array, keys_B: jax.Array) -> jax.Array:
        del keys_B
        return first_argmax(logits_BV)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Temperature, then top-k (0 = off), then top-p (1.0 = off), as HF orders them."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0:
            raise SettingError(f"temperature={self.temperature} must be > 0 (use Greedy() for 0)")
        if self.top_k < 0:
            raise SettingError(f"top_k={self.top_k} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise SettingError(f"top_p={self.top_p} must be in (0, 1]")

    def next_token(self, logits_BV: jax.Array, keys_B: jax.Array) -> jax.Array:
        logits_BV = logits_BV / self.temperature
        if self.top_k:
            kth_B1 = jax.lax.top_k(logits_BV, min(self.top_k, logits_BV.shape[-1]))[0][:, -1:]
            logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
        if self.top_p < 1.0:
            logits_BV = _top_p_filter(logits_BV, self.top_p)
        return jax.vmap(jax.random.categorical)(keys_B, logits_BV).astype(jnp.int32)


def _top_p_filter(logits_BV: jax.Array, top_p: float) -> jax.Array:
    """Keeps the smallest set of most likely tokens whose probability reaches top_p."""
    sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    cumulative_BV = jnp.cumsum(jax.nn.softmax(sorted_BV, axis=-1), axis=-1)
    # The token at which the cumulative mass first reaches top_p is the last one kept.
    cutoff_index_B1 = jnp.sum(cumulative_BV < top_p, axis=-1, keepdims=True)
    cutoff_B1 = jnp.take_along_axis(sorted_BV, cutoff_index_B1, axis=-1)
    return jnp.where(logits_BV < cutoff_B1, -jnp.inf, logits_BV)


@dataclasses.dataclass(frozen=True)
class BeamSearch:
    """HF-compatible beam search. `early_stopping`: True stops a row once it has
    `num_beams` finished hypotheses; False uses HF's heuristic; "never" runs the
    canonical search until no hypothesis can improve.

    `num_beams` must be at least 2: `BeamSearch(num_beams=1)` is refused rather than
    quietly run as greedy decoding (HF switches to greedy there; use `Greedy()`)."""

    num_beams: int = 4
    length_penalty: float = 1.0
    early_stopping: bool | Literal["never"] = False

    def __post_init__(self):
        if self.num_beams < 2:
            raise SettingError(
                f"num_beams={self.num_beams}: beam search needs num_beams >= 2 (one beam is greedy "
                "decoding: use Greedy())"
            )
        if self.early_stopping not in (True, False, "never"):
            raise SettingError(f"early_stopping={self.early_stopping!r}: use True, False or \"never\"")


Strategy = Greedy | Sampling | BeamSearch


def beam_settings(strategy: Strategy) -> dict:
    """HF `generate`'s beam-search arguments for a strategy ({} for greedy)."""
    return dataclasses.asdict(strategy) if isinstance(strategy, BeamSearch) else {}
