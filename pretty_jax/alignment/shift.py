"""Token distribution shift: each position classified by the rank the foundation model
gives the SFT model's token there (the classes of Lin et al.'s token distribution
shift analysis, URIAL, 2023).

  unshifted  the SFT token is the foundation's top-1            (rank 1)
  marginal   it is the foundation's second or third choice      (rank 2-3)
  shifted    the foundation ranks it lower                      (rank > 3)

Ranks here are 1-based; `sft_rank_in_lm` counts the tokens the foundation scores
strictly higher, so rank = sft_rank_in_lm + 1.
"""

from __future__ import annotations

import numpy as np

SHIFT_CLASSES = ("unshifted", "marginal", "shifted")
# Upper 1-based rank of each class but the last.
_MARGINAL_RANK = 3


def shift_classes(sft_rank_in_lm: np.ndarray) -> np.ndarray:
    """Class index per position (0 unshifted, 1 marginal, 2 shifted), same shape as
    `sft_rank_in_lm` (0-based counts of higher-scored tokens)."""
    rank = np.asarray(sft_rank_in_lm) + 1
    return np.where(rank == 1, 0, np.where(rank <= _MARGINAL_RANK, 1, 2)).astype(np.int8)


def shift_shares(sft_rank_in_lm: np.ndarray) -> dict[str, float | None]:
    """{class: share of the positions in it} over pooled positions; None for none."""
    classes = shift_classes(sft_rank_in_lm).ravel()
    if classes.size == 0:
        return {name: None for name in SHIFT_CLASSES}
    return {name: float(np.mean(classes == index)) for index, name in enumerate(SHIFT_CLASSES)}
