"""The next-token logits of a decoding step: how the logits of a system's streams
become the logits its strategy picks from.

A stream is one model over one prompt (streams.py). A plain system has one; a system
that steers decoding with other distributions reads several per step, all fed the same
generated tokens: contrastive decoding (one model over the real prompt and a
contrastive one), proxy tuning (a large model and a small tuned/base pair over one
prompt). Each such method is one rule here — a tiny frozen dataclass, jit-static — that
the token loop (`Engine.step`) and beam search call on device at every step; never a
loop of its own.

A rule has `streams`, how many streams it reads, and `combine(logits, steps_B)`: their
float32 logits, one [B, V] array per stream in stream order, and each row's number of
tokens generated so far, [B] int32 (a rule may change with the step, e.g. steering only
the first tokens) -> the [B, V] float32 logits to pick from.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol

import jax


class LogitsRule(Protocol):
    """How a system's streams' logits combine (see the module docstring)."""

    streams: int

    def combine(self, logits: tuple[jax.Array, ...], steps_B: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class OneModel:
    """The plain system: one model's logits, as they are."""

    streams: ClassVar[int] = 1

    def combine(self, logits: tuple[jax.Array, ...], steps_B: jax.Array) -> jax.Array:
        del steps_B
        return logits[0]
