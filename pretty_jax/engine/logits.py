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
import jax.numpy as jnp


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


@dataclasses.dataclass(frozen=True)
class Contrastive:
    """Source- and language-contrastive decoding (Sennrich, Vamvas, Mohammadshahi,
    EACL 2024): one model over the real prompt x (stream 0) and over contrastive prompts
    x'_1..x'_n (streams 1..n: a random other source, or the prompt asking for the wrong
    language), each next token scored by

        log p(y | x) - sum_i lambdas[i] * log p(y | x'_i)

    over full-vocabulary log-probabilities (float32 log-softmax of each stream, so each
    term is a normalised distribution whatever the models' logit scales). The score is
    not renormalised: greedy and beam search take it as it is, sampling reads it as
    logits (softmax renormalises). As in the paper there is no plausibility cut-off
    (the adaptive constraint of Li et al.'s contrastive decoding): with lambdas below 1
    a token improbable under x stays improbable. A lambda of 0 reads its stream and
    ignores it, decoding as the plain model.

    lambdas: one weight >= 0 per contrastive stream.
    """

    lambdas: tuple[float, ...]

    def __post_init__(self):
        if not self.lambdas or any(not w >= 0 for w in self.lambdas):
            raise ValueError(f"Contrastive needs one weight >= 0 per contrastive prompt, not {self.lambdas}")

    @property
    def streams(self) -> int:
        return 1 + len(self.lambdas)

    def combine(self, logits: tuple[jax.Array, ...], steps_B: jax.Array) -> jax.Array:
        del steps_B
        score_BV = jax.nn.log_softmax(logits[0])
        for weight, contrastive_BV in zip(self.lambdas, logits[1:]):
            score_BV = score_BV - weight * jax.nn.log_softmax(contrastive_BV)
        return score_BV


@dataclasses.dataclass(frozen=True)
class ProxyTuning:
    """Proxy tuning (Liu, Han, Wang, Tsvetkov, Choi, Smith, COLM 2024): a foundation
    model steered by the difference a small tuned model makes to its small base, all
    over one prompt and one vocabulary; streams (foundation, tuned, base):

        logits_foundation + (logits_tuned - logits_base)

    (raw logits as the paper; log-probabilities would differ by a per-row constant, the
    same distribution). With `first_k`, only a row's first k generated tokens are
    steered (k counts from the first token generated, after any prior), then the
    foundation decodes alone: first_k=0 is the plain foundation. The tuned and base
    streams are still fed every token, so the cost of a step does not change with k.

    first_k: None steers every token.
    """

    first_k: int | None = None
    streams: ClassVar[int] = 3

    def __post_init__(self):
        if self.first_k is not None and self.first_k < 0:
            raise ValueError(f"ProxyTuning first_k={self.first_k} must be >= 0 (or None: every token)")

    def combine(self, logits: tuple[jax.Array, ...], steps_B: jax.Array) -> jax.Array:
        foundation_BV, tuned_BV, base_BV = logits
        steered_BV = foundation_BV + (tuned_BV - base_BV)
        if self.first_k is None:
            return steered_BV
        return jnp.where((steps_B < self.first_k)[:, None], steered_BV, foundation_BV)
