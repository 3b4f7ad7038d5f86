"""Dequantisation speed: pretty_jax's numpy layouts against llama.cpp's `gguf.quants`.

    python scripts/bench_dequantize.py                 # 2048 x 8192 of random blocks per type
    python scripts/bench_dequantize.py --gguf=FILE     # also every type of a real file

For every type `quants.BLOCK_TYPES` still writes by hand, both dequantisers read the
same raw blocks, alternately (ours, gguf, ours, gguf, ... `--repeats` times each, so a
load change on a shared machine hits both), and the best time of each is kept. Prints
one line per type: ms of each, and `ratio` = gguf / ours (> 1: ours is faster). With
`--gguf`, the largest tensor of each type in that file is timed the same way, and a
type the file holds that we leave to gguf is timed through `quants.dequantize` alone.
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

from pretty_jax.checkpoints.gguf import quants

_ROWS = flags.DEFINE_integer("rows", 2048, "Rows of the random tensor per type.")
_COLS = flags.DEFINE_integer("cols", 8192, "Columns of the random tensor per type.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of each dequantiser, alternated.")
_GGUF = flags.DEFINE_string("gguf", None, "A .gguf file whose tensors are timed too.")


def _random_raw(type_name: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Raw bytes [rows, cols / block_size * type_size] of random blocks; every f16
    field that ggml reads as a scale is set to a finite value so no NaN path is timed."""
    import gguf

    block_size, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    if block_size == 1:  # a float type: random values stored in it
        values = rng.standard_normal((rows, cols)).astype(np.float32)
        stored = {"F32": values, "F16": values.astype(np.float16)}.get(type_name)
        if stored is None:
            stored = gguf.quants.quantize(values, gguf.GGMLQuantizationType[type_name])
        return stored
    raw = rng.integers(0, 256, size=(rows * cols // block_size, type_size), dtype=np.uint8)
    half = rng.uniform(-1e-3, 1e-3, size=(raw.shape[0], type_size // 2)).astype("<f2").view(np.uint8)
    finite = np.isfinite(raw.copy().view("<f2").astype(np.float32))
    raw = np.where(np.repeat(finite, 2, axis=1), raw, half)  # no Inf/NaN bit pattern anywhere
    return raw.reshape(rows, -1)


def _best_times(raw: np.ndarray, type_name: str, shape: tuple[int, ...], repeats: int) -> tuple[float, float]:
    """(ours, gguf) best wall seconds over `repeats` alternated runs; checks both agree."""
    import gguf

    kind = gguf.GGMLQuantizationType[type_name]
    ours, theirs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        mine = quants.BLOCK_TYPES[type_name].dequantize(raw.view(np.uint8).reshape(-1, quants.BLOCK_TYPES[type_name].type_size))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = gguf.quants.dequantize(raw, kind)
        theirs.append(time.perf_counter() - start)
    np.testing.assert_array_equal(mine.reshape(shape), reference.astype(np.float32).reshape(shape))
    return min(ours), min(theirs)


def _report(label: str, type_name: str, raw: np.ndarray, shape: tuple[int, ...]) -> None:
    ours, theirs = _best_times(raw, type_name, shape, _REPEATS.value)
    print(f"{label:<34} {type_name:<5} ours={ours * 1e3:8.1f} ms  gguf={theirs * 1e3:8.1f} ms  ratio={theirs / ours:5.2f}")


def _real_file(path: str) -> None:
    from pretty_jax.checkpoints.gguf.reader import GGUFFile

    largest = {}
    for tensor in GGUFFile(path).tensors.values():
        name = tensor.type_name
        if name not in largest or np.prod(tensor.shape) > np.prod(largest[name].shape):
            largest[name] = tensor
    for name, tensor in sorted(largest.items()):
        shape = tuple(int(d) for d in reversed(tensor.shape))
        label = f"{tensor.name} {'x'.join(map(str, shape))}"
        if name in quants.BLOCK_TYPES:
            _report(label, name, np.ascontiguousarray(tensor.data), shape)
        else:
            start = time.perf_counter()
            quants.dequantize(tensor.data, name, shape)
            print(f"{label:<34} {name:<5} gguf={(time.perf_counter() - start) * 1e3:8.1f} ms (read through gguf only)")


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    shape = (_ROWS.value, _COLS.value)
    for type_name in quants.BLOCK_TYPES:
        _report(f"random {shape[0]}x{shape[1]}", type_name, _random_raw(type_name, *shape, rng), shape)
    if _GGUF.value:
        _real_file(_GGUF.value)


if __name__ == "__main__":
    app.run(main)
