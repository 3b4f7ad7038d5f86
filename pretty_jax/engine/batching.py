"""Turning ragged token-id lists into the padded arrays the models take: padding,
bucketed lengths and positions, for the decode engine and the alignment scorer alike."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

MIN_BUCKET = 16


def bucket_length(length: int) -> int:
    """Padded prefill length: powers of two from 16 to 512, then multiples of 256 (so a
    long run compiles a handful of programs, not one per batch)."""
    if length <= 512:
        return max(MIN_BUCKET, 1 << (length - 1).bit_length())
    return -(-length // 256) * 256


def positions_from_mask(mask_BT):
    """Positions [B, T] int32 of rows laid out by `mask_BT` (1 = real token): 0, 1, ...
    over each row's real tokens, 0 on the left padding. NumPy in, NumPy out; a jax
    array (traced or not) in, a jax array out."""
    xp = np if isinstance(mask_BT, np.ndarray) else jnp
    return xp.maximum(xp.cumsum(mask_BT, axis=1) - 1, 0).astype(xp.int32)


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, length: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-pads token-id lists to a common length (the longest, or `length`).

    Returns tokens [B, T] int32, attention_mask [B, T] int32 (1 = real token) and
    positions [B, T] int32 (`positions_from_mask`).
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
    return tokens, mask, positions_from_mask(mask)
