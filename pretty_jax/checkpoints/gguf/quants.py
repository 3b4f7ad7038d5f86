"""Dequantising llama.cpp (ggml) tensor data with numpy.

A ggml tensor is a flat run of blocks; each block encodes `block_size` consecutive
values (along a row, rows never share a block) in `type_size` bytes. Every function
here takes the blocks as a uint8 array [num_blocks, type_size] and returns float32
values [num_blocks, block_size], vectorised over the blocks. Layouts follow ggml's
`ggml-common.h`; multi-byte fields are little-endian, `f16` is IEEE half precision.

Legend: d = block scale, m / dmin = block minimum, qs = packed low bits of the
quantised values, qh = packed high bits, sc = sub-block scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

QK_K = 256  # values per K-quant super-block


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    """The little-endian f16 at byte `start` of every block, as float32 [N, 1]."""
    return blocks[:, start : start + 2].copy().view("<f2").astype(np.float32)


def _nibbles(packed: np.ndarray) -> np.ndarray:
    """[N, k] bytes -> [N, 2k] 4-bit values: all low nibbles, then all high nibbles."""
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1)


def dequantize_f32(blocks: np.ndarray) -> np.ndarray:
    """F32: one little-endian float32 per 4-byte block."""
    return blocks.copy().view("<f4").astype(np.float32)


def dequantize_f16(blocks: np.ndarray) -> np.ndarray:
    """F16: one IEEE half per 2-byte block."""
    return blocks.copy().view("<f2").astype(np.float32)


def dequantize_bf16(blocks: np.ndarray) -> np.ndarray:
    """BF16: the top 16 bits of a float32, per 2-byte block."""
    return (blocks.copy().view("<u2").astype(np.uint32) << 16).view(np.float32)


def dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """Q8_0, 32 values in 34 bytes: d (f16), qs (32 x int8); x = d * q."""
    return _f16(blocks, 0) * blocks[:, 2:].view(np.int8).astype(np.float32)


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0, 32 values in 18 bytes: d (f16), qs (16 bytes: values 0-15 in the low
    nibbles, 16-31 in the high ones); x = d * (q - 8)."""
    return _f16(blocks, 0) * (_nibbles(blocks[:, 2:]).astype(np.float32) - 8)


def dequantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    """Q4_1, 32 values in 20 bytes: d (f16), m (f16), qs as in Q4_0; x = d * q + m."""
    return _f16(blocks, 0) * _nibbles(blocks[:, 4:]).astype(np.float32) + _f16(blocks, 2)


def _k_scales_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit scales and 8 six-bit mins of a Q4_K/Q5_K super-block, packed in
    12 bytes [N, 12] (ggml's `get_scale_min_k4`): bytes 0-3 hold scales 0-3 (low 6
    bits), bytes 4-7 mins 0-3; bytes 8-11 hold the low 4 bits of scales 4-7 (low
    nibble) and mins 4-7 (high nibble), whose top 2 bits are the spare top bits of
    bytes 0-3 (scales) and 4-7 (mins)."""
    low, high, rest = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([low & 63, (rest & 0x0F) | ((low >> 6) << 4)], axis=-1)
    mins = np.concatenate([high & 63, (rest >> 4) | ((high >> 6) << 4)], axis=-1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K `qs` [N, 128] -> [N, 8, 32] 4-bit values per sub-block: each 32-byte
    chunk holds two sub-blocks, the first in the low nibbles, the second in the high."""
    chunks = qs.reshape(-1, 4, 1, 32)
    return np.concatenate([chunks & 0x0F, chunks >> 4], axis=2).reshape(-1, 8, 32)


def dequantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    """Q4_K, 256 values in 144 bytes: d (f16), dmin (f16), sc (12 bytes: 8 six-bit
    scales and mins, see `_k_scales_mins`), qs (128 bytes, see `_k_low_nibbles`);
    sub-block j of 32 values: x = d * scale_j * q - dmin * min_j."""
    scales, mins = _k_scales_mins(blocks[:, 4:16])
    q = _k_low_nibbles(blocks[:, 16:144]).astype(np.float32)
    x = (_f16(blocks, 0) * scales)[..., None] * q - (_f16(blocks, 2) * mins)[..., None]
    return x.reshape(-1, QK_K)


def dequantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    """Q5_K, 256 values in 176 bytes: d, dmin, sc as in Q4_K, qh (32 bytes: bit j of
    byte l is the fifth bit of value l of sub-block j), qs as in Q4_K;
    x = d * scale_j * (q + 16 * high bit) - dmin * min_j."""
    scales, mins = _k_scales_mins(blocks[:, 4:16])
    qh = blocks[:, 16:48]
    high_bits = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1  # [N, 8, 32]
    q = (_k_low_nibbles(blocks[:, 48:176]) | (high_bits << 4)).astype(np.float32)
    x = (_f16(blocks, 0) * scales)[..., None] * q - (_f16(blocks, 2) * mins)[..., None]
    return x.reshape(-1, QK_K)


def dequantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    """Q6_K, 256 values in 210 bytes: ql (128 bytes, low 4 bits), qh (64 bytes, high
    2 bits), sc (16 x int8, one per 16 values), d (f16); x = d * sc * (q - 32).

    Each half of 128 values uses 64 bytes of ql and 32 of qh: value 32*i + l (i = 0..3,
    l = 0..31) takes the low (i < 2) or high (i >= 2) nibble of ql[l + 32 * (i % 2)]
    and bits 2i, 2i+1 of qh[l]; scale k covers values 16k to 16k+15."""
    ql = blocks[:, :128].reshape(-1, 2, 1, 2, 32)  # [N, half, nibble, byte group, l]
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2).reshape(-1, 2, 4, 32)
    qh = blocks[:, 128:192].reshape(-1, 2, 1, 32)
    high = (qh >> (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]) & 3
    q = (low | (high << 4)).astype(np.float32).reshape(-1, 16, 16) - 32
    scales = blocks[:, 192:208].view(np.int8).astype(np.float32)
    return ((_f16(blocks, 208) * scales)[..., None] * q).reshape(-1, QK_K)


@dataclasses.dataclass(frozen=True)
class BlockType:
    block_size: int
    type_size: int
    dequantize: Callable[[np.ndarray], np.ndarray]


# ggml type name -> its block layout. Every other type is refused by name.
BLOCK_TYPES = {
    "F32": BlockType(1, 4, dequantize_f32),
    "F16": BlockType(1, 2, dequantize_f16),
    "BF16": BlockType(1, 2, dequantize_bf16),
    "Q8_0": BlockType(32, 34, dequantize_q8_0),
    "Q4_0": BlockType(32, 18, dequantize_q4_0),
    "Q4_1": BlockType(32, 20, dequantize_q4_1),
    "Q4_K": BlockType(QK_K, 144, dequantize_q4_k),
    "Q5_K": BlockType(QK_K, 176, dequantize_q5_k),
    "Q6_K": BlockType(QK_K, 210, dequantize_q6_k),
}


def dequantize(data: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array of `shape` (numpy order, rows last-axis contiguous) that the
    raw tensor bytes `data` of ggml type `type_name` encode: the layouts above, and every
    other float quantisation through llama.cpp's `gguf.quants` (`supported`)."""
    block = BLOCK_TYPES.get(type_name)
    if block is None:
        from gguf import GGMLQuantizationType
        from gguf import quants as gguf_quants

        values = gguf_quants.dequantize(np.ascontiguousarray(data), GGMLQuantizationType[type_name])
        return values.astype(np.float32, copy=False).reshape(shape)
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1, block.type_size)
    return block.dequantize(raw).reshape(shape)


def supported(type_name: str) -> bool:
    """Whether `dequantize` reads ggml type `type_name` (integer types never are)."""
    if type_name in BLOCK_TYPES:
        return True
    from gguf import GGMLQuantizationType
    from gguf import quants as gguf_quants

    kind = GGMLQuantizationType.__members__.get(type_name)
    # gguf.quants registers one dequantiser per quantised type it reads (no public list).
    return kind is not None and kind in gguf_quants._type_traits
