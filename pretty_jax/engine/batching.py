"""Turning ragged token-id lists into the padded arrays the models take."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, length: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-pads token-id lists to a common length (the longest, or `length`).

    Returns tokens [B, T] int32, attention_mask [B, T] int32 (1 = real token) and
    positions [B, T] int32 (0, 1, ... over each row's real tokens; 0 on padding).
    """
    longest = max(len(s) for s in sequences)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"length {length} is shorter than the longest sequence ({longest})")
    tokens = np.full((len(sequences), length), pad_id, np.int32)
    mask = np.zeros((len(sequences), length), np.int32)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            tokens[row, length - len(sequence) :] = sequence
            mask[row, length - len(sequence) :] = 1
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    return tokens, mask, positions
