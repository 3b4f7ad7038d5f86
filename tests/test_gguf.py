"""GGUF import: our dequantisers against gguf-py's, and llama.cpp files written from
tiny HF checkpoints read as transformers reads the same file."""

from __future__ import annotations

import numpy as np
import pytest

from pretty_jax import gguf_quants

gguf = pytest.importorskip("gguf")

# Byte offsets of the f16 scales in each block type: random bytes there could be
# NaN or inf, so the tests put finite values there.
_F16_FIELDS = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def random_blocks(type_name: str, num_blocks: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Random raw blocks [num_blocks, type_size] of a quantised type, with finite
    f16 scales in [-scale, scale]."""
    block = gguf_quants.BLOCK_TYPES[type_name]
    raw = rng.integers(0, 256, size=(num_blocks, block.type_size), dtype=np.uint8)
    for offset in _F16_FIELDS[type_name]:
        scales = rng.uniform(-scale, scale, size=(num_blocks, 1)).astype("<f2")
        raw[:, offset : offset + 2] = scales.view(np.uint8)
    return raw


@pytest.mark.parametrize("type_name", sorted(_F16_FIELDS))
def test_quantised_blocks_dequantise_as_gguf_py_does(type_name):
    raw = random_blocks(type_name, 48, np.random.default_rng(0))
    rows = 3
    shape = (rows, 48 * gguf_quants.BLOCK_TYPES[type_name].block_size // rows)
    expected = gguf.quants.dequantize(raw.reshape(rows, -1), gguf.GGMLQuantizationType[type_name])
    np.testing.assert_array_equal(gguf_quants.dequantize(raw, type_name, shape), expected)


@pytest.mark.parametrize("type_name", ["F32", "F16", "BF16"])
def test_float_tensors_dequantise_as_gguf_py_does(type_name):
    values = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    qtype = gguf.GGMLQuantizationType[type_name]
    stored = values if type_name == "F32" else gguf.quants.quantize(values, qtype)
    np.testing.assert_array_equal(
        gguf_quants.dequantize(stored, type_name, (3, 64)), gguf.quants.dequantize(stored, qtype)
    )
