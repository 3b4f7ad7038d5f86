"""Proving a model equal to the transformers reference: how close two sets of logits are
(`Agreement`, judged by a relative bound that scales with the logits), what a correct
model meets per dtype (`DEFAULT_TOLERANCES`), our logits with and without the KV cache,
and token-by-token comparison of generations. `python -m pretty_jax.parity` prints them."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from pretty_jax.models import Model, forward, new_cache


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """What parity allows. Any bound left None is not checked.

    max_rel: largest relative logit difference (`Agreement.max_rel`).
    kl: largest mean KL(HF || ours) per position.
    min_top1: smallest fraction of positions whose top-1 token agrees.
    max_abs: largest absolute logit difference; off by default, since logits grow with
      the model (a correct float32 Gemma 3 differs from HF by 1e-3 at logits near 30).
    """

    max_rel: float | None
    kl: float | None
    min_top1: float | None
    max_abs: float | None = None

    def failures(self, agreement: "Agreement") -> list[str]:
        """The bounds `agreement` breaks, each as e.g. `rel=0.012>0.0001`; empty if none."""
        broken = []
        if self.max_rel is not None and not agreement.max_rel <= self.max_rel:
            broken.append(f"rel={agreement.max_rel:.3g}>{self.max_rel:g}")
        if self.kl is not None and not agreement.kl <= self.kl:
            broken.append(f"kl={agreement.kl:.3g}>{self.kl:g}")
        if self.min_top1 is not None and not agreement.top1 >= self.min_top1:
            broken.append(f"top1={agreement.top1:.3f}<{self.min_top1:g}")
        if self.max_abs is not None and not agreement.max_abs <= self.max_abs:
            broken.append(f"max_abs={agreement.max_abs:.3g}>{self.max_abs:g}")
        return broken

    def line(self) -> str:
        bounds = [
            f"rel<={self.max_rel:g}" if self.max_rel is not None else None,
            f"kl<={self.kl:g}" if self.kl is not None else None,
            f"top1>={self.min_top1:g}" if self.min_top1 is not None else None,
            f"max_abs<={self.max_abs:g}" if self.max_abs is not None else None,
        ]
        return " ".join(b for b in bounds if b) or "none"


# Per dtype, bounds a correct model meets with a margin. Measured on Gemma 3 270M:
# float32 rel 4.3e-5, KL 4e-11 (rounding in a different order of operations); bfloat16
# rel 0.069, KL 1.5e-3, top-1 0.975 (an 8-bit mantissa through 18 layers). float32
# catches subtle defects (a RoPE base 5% off: rel 0.12); bfloat16 only gross ones.
DEFAULT_TOLERANCES = {
    "float32": Tolerances(max_rel=2e-4, kl=1e-6, min_top1=0.99),
    "bfloat16": Tolerances(max_rel=0.15, kl=1e-2, min_top1=0.9),
}


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How close two sets of logits are over some positions.

    max_abs: largest |reference - ours| logit difference.
    max_rel: largest, over positions, of that position's max |reference - ours| divided
      by max(1, max |reference logit|) at the position. Rounding error in a logit grows
      with the magnitudes summed into it, so this bound holds a correct model to the
      same standard whatever its logit scale; per position (not over the batch), so one
      large-logit position cannot excuse an error where the logits are small; and at
      least 1 so near-zero logits are judged in absolute terms.
    kl: mean KL(reference || ours) per position.
    top1: fraction of positions whose most likely token agrees.
    """

    max_abs: float
    max_rel: float
    kl: float
    top1: float
    positions: int

    @classmethod
    def of(cls, reference_PV: np.ndarray, ours_PV: np.ndarray) -> "Agreement":
        """Compares logits of P positions (rows) over the vocabulary, in float64."""
        ref, ours = reference_PV.astype(np.float64), ours_PV.astype(np.float64)
        ref_logp = ref - _logsumexp(ref)
        ours_logp = ours - _logsumexp(ours)
        kl_P = np.sum(np.exp(ref_logp) * (ref_logp - ours_logp), axis=-1)
        abs_diff_P = np.abs(ref - ours).max(axis=-1)
        scale_P = np.maximum(1.0, np.abs(ref).max(axis=-1))
        return cls(
            max_abs=float(abs_diff_P.max()),
            max_rel=float((abs_diff_P / scale_P).max()),
            kl=float(kl_P.mean()),
            top1=float(np.mean(ref.argmax(-1) == ours.argmax(-1))),
            positions=len(ref),
        )

    def line(self) -> str:
        return f"max_abs={self.max_abs:.3g} rel={self.max_rel:.3g} kl={self.kl:.3g} top1={self.top1:.3f}"


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def our_logits(model: Model, tokens, mask, positions) -> tuple[np.ndarray, np.ndarray]:
    """Our float32 logits [B, T, V], from one full forward and from a cached run (the
    first half of the slots prefilled, then one token per step)."""
    run = jax.jit(forward, static_argnums=0)
    full, _ = run(model.graphdef, model.params, tokens, positions, mask)
    batch, length = tokens.shape
    split = max(1, length // 2)
    cache = new_cache(model.config, batch, length, model.dtype)
    pieces = []
    for start, stop in [(0, split)] + [(t, t + 1) for t in range(split, length)]:
        logits, cache = run(
            model.graphdef, model.params, tokens[:, start:stop], positions[:, start:stop],
            mask[:, start:stop], cache,
        )
        pieces.append(np.asarray(logits))
    return np.asarray(full), np.concatenate(pieces, axis=1)


def generation_matches(ours: Sequence[int], theirs: Sequence[int], pad_id: int) -> tuple[bool, int]:
    """Whether our tokens equal the reference row (padded with `pad_id` after it ends),
    and the index of the first difference (len(ours) when they are equal)."""
    theirs = [int(t) for t in theirs]
    n = len(ours)
    same = list(ours) == theirs[:n] and all(t == pad_id for t in theirs[n:])
    return same, n if same else _first_difference(ours, theirs)


def _first_difference(ours, theirs) -> int:
    return next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
