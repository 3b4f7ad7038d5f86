"""Dequantising llama.cpp (ggml) tensor data.

Every float type and float quantisation is read through llama.cpp's own Python
package (`gguf.quants.dequantize`), except the two laid out here in numpy, which
measured faster than gguf's (scripts/bench_dequantize.py, 2-core CPU, best of 7:
on 2048 x 8192, BF16 25 ms vs 52 ms, Q8_0 29 ms vs 45 ms; on Gemma 3 270M's
262144 x 640 Q8_0 embedding 354 ms vs 419 ms). gguf's own was as fast or faster for
F32 (a view, no copy), F16, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K at 2048 x 8192, so those
hand-written layouts were removed.

A ggml tensor is a flat run of blocks; each block encodes `block_size` consecutive
values (along a row, rows never share a block) in `type_size` bytes. The functions
here take the blocks as a uint8 array [num_blocks, type_size] and return float32
values [num_blocks, block_size]. Layouts follow ggml's `ggml-common.h`; multi-byte
fields are little-endian, `f16` is IEEE half precision.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np


def dequantize_bf16(blocks: np.ndarray) -> np.ndarray:
    """BF16: the top 16 bits of a float32, per 2-byte block."""
    return (blocks.copy().view("<u2").astype(np.uint32) << 16).view(np.float32)


def dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """Q8_0, 32 values in 34 bytes: d (f16), qs (32 x int8); x = d * q."""
    scale = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
    return scale * blocks[:, 2:].view(np.int8).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class BlockType:
    block_size: int
    type_size: int
    dequantize: Callable[[np.ndarray], np.ndarray]


# ggml type name -> the layouts read here; every other type goes to gguf.quants.
BLOCK_TYPES = {
    "BF16": BlockType(1, 2, dequantize_bf16),
    "Q8_0": BlockType(32, 34, dequantize_q8_0),
}


def dequantize(data: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array of `shape` (numpy order, rows last-axis contiguous) that the
    raw tensor bytes `data` of ggml type `type_name` encode (a type `supported` accepts)."""
    block = BLOCK_TYPES.get(type_name)
    if block is None:
        from gguf import GGMLQuantizationType
        from gguf import quants as gguf_quants

        values = gguf_quants.dequantize(np.asarray(data), GGMLQuantizationType[type_name])
        return values.astype(np.float32, copy=False).reshape(shape)
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1, block.type_size)
    return block.dequantize(raw).reshape(shape)


@functools.cache
def supported(type_name: str) -> bool:
    """Whether `dequantize` reads ggml type `type_name`: gguf has no public list of the
    types it dequantises, so one all-zero block is offered to its public
    `gguf.quants.dequantize`, which raises NotImplementedError for the others (the
    integer types I8 ... I64, F64, and types newer than the installed package)."""
    if type_name in BLOCK_TYPES:
        return True
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf import quants as gguf_quants

    kind = GGMLQuantizationType.__members__.get(type_name)
    if kind is None or kind not in GGML_QUANT_SIZES:
        return False
    _, type_size = GGML_QUANT_SIZES[kind]
    try:
        gguf_quants.dequantize(np.zeros((1, type_size), dtype=np.uint8), kind)
    except NotImplementedError:
        return False
    return True
