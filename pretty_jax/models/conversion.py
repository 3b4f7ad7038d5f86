"""HF tensor names and layouts <-> pretty_jax parameters, refusing to guess.

Each family describes its checkpoint as a layout: for every one of our parameter paths
(`layers.3.attn.q_proj`), the HF tensor that fills it and how its layout changes. The
converter then checks the whole checkpoint before reading a byte of it: every HF tensor
must be used (or be a known non-parameter buffer), every parameter must be found, and
every shape must be the one the config implies.

Every transform is invertible (`to_hf`), so the same layout also writes an HF
checkpoint back (`pretty_jax.export`): one name map per family, used both ways.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Iterable, Mapping

import numpy as np

from pretty_jax.core.errors import CheckpointError
from pretty_jax.core.progress import Progress

# Tensors are many and mostly quick: off a terminal, one progress line per this many seconds.
PROGRESS_LOG_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Same:
    """The HF tensor already has our shape and layout."""

    def hf_shape(self, our_shape: tuple[int, ...]) -> tuple[int, ...]:
        return our_shape

    def to_ours(self, hf: np.ndarray, our_shape: tuple[int, ...]) -> np.ndarray:
        return hf

    def to_hf(self, ours: np.ndarray) -> np.ndarray:
        return ours


@dataclasses.dataclass(frozen=True)
class Flat:
    """A flat HF vector (a bias) split into our axes, e.g. [N*H] -> [N, H]."""

    def hf_shape(self, our_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(our_shape),)

    def to_ours(self, hf: np.ndarray, our_shape: tuple[int, ...]) -> np.ndarray:
        return hf.reshape(our_shape)

    def to_hf(self, ours: np.ndarray) -> np.ndarray:
        return ours.reshape(self.hf_shape(ours.shape))


@dataclasses.dataclass(frozen=True)
class Matrix:
    """An HF matrix (a torch `nn.Linear` weight [out, in]) split into our axes: its
    rows are our first `row_axes` axes, its columns the rest. Our weights keep torch's
    output-major layout, so this is a reshape, e.g. q_proj [N*H, D] -> [N, H, D] and
    o_proj [D, N*H] -> [D, N, H]."""

    row_axes: int

    def hf_shape(self, our_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(our_shape[: self.row_axes]), math.prod(our_shape[self.row_axes :]))

    def to_ours(self, hf: np.ndarray, our_shape: tuple[int, ...]) -> np.ndarray:
        return hf.reshape(our_shape)

    def to_hf(self, ours: np.ndarray) -> np.ndarray:
        return ours.reshape(self.hf_shape(ours.shape))


Transform = Same | Flat | Matrix


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """Where one of our parameters comes from in an HF checkpoint."""

    key: str
    transform: Transform = Same()


@dataclasses.dataclass(frozen=True)
class CheckpointLayout:
    """A family's HF checkpoint description.

    tensors: our parameter path -> its HF tensor.
    ignored: regexes of HF keys that are buffers, not parameters (e.g. cached rotary
      frequencies in old LLaMA checkpoints).
    aliases: HF key prefixes that some checkpoints omit or add; each (prefix, canonical)
      pair rewrites a key starting with `prefix` to start with `canonical`.
    tied: pairs (HF key, our path) of tensors that the config ties to another
      parameter: when the checkpoint holds one anyway it must equal the tied
      parameter, or the config is wrong.
    layer_prefix: the canonical HF prefix of the decoder layers: layer i's tensors are
      named `{layer_prefix}.{i}.*` (`model.layers`, `transformer.h`).
    """

    tensors: Mapping[str, HFTensor]
    ignored: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    tied: tuple[tuple[str, str], ...] = ()
    layer_prefix: str = ""

    def canonical(self, hf_key: str) -> str:
        for prefix, canonical in self.aliases:
            if hf_key.startswith(prefix):
                return canonical + hf_key[len(prefix) :]
        return hf_key


@dataclasses.dataclass(frozen=True)
class TensorSource:
    """Read access to the tensors of a checkpoint: names, shapes and values.

    keys: every tensor name, each once (duplicates are refused when the source is
      built). shape(key) -> shape without reading; read(key) -> numpy array.
    dtype(key) -> the stored element type's name ("float32", "bfloat16", "int32",
      "bool", ...), without reading. location(key) -> the file that holds it.
    """

    description: str
    keys: tuple[str, ...]
    shape: Callable[[str], tuple[int, ...]]
    read: Callable[[str], np.ndarray]
    dtype: Callable[[str], str]
    location: Callable[[str], str]


# Safetensors' element type codes -> numpy-style names; the floating ones are weights.
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}


def is_floating(dtype_name: str) -> bool:
    """Whether a stored element type (`TensorSource.dtype` names) can hold a weight."""
    return dtype_name.startswith(("float", "bfloat"))


def refuse_non_floating(stored: Iterable[tuple[str, str, str]]) -> None:
    """Raises CheckpointError, naming the first tensor and how many more, if any of
    `stored` (tensor name, dtype name, file) is not floating point: integer or bool
    weights are quantised or not weights at all, and casting them to float would load
    a wrong model without a word."""
    wrong = [(key, dtype, where) for key, dtype, where in stored if not is_floating(dtype)]
    if not wrong:
        return
    key, dtype, where = wrong[0]
    more = f" (and {len(wrong) - 1} more non-floating tensors)" if len(wrong) > 1 else ""
    raise CheckpointError(
        f"{where}: tensor {key} is stored as {dtype}, not floating point{more}; weights must be "
        "float16, bfloat16 or float32 (integer-quantised checkpoints are not supported: use the "
        "unquantised original, or a GGUF file)"
    )


def stored_layers(keys: Iterable[str], layer_prefix: str) -> list[int]:
    """The sorted layer numbers i of `keys` named `{layer_prefix}.{i}.*`."""
    pattern = re.compile(re.escape(layer_prefix) + r"\.(\d+)\.")
    return sorted({int(match.group(1)) for key in keys if (match := pattern.match(key))})


def _listing(title: str, items: Iterable[str], limit: int = 20) -> str:
    items = sorted(items)
    shown = "\n    ".join(items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):\n    {shown}{more}"


def _index_by_canonical_key(
    layout: CheckpointLayout, source: TensorSource
) -> tuple[dict[str, str], list[str]]:
    """The source's keys by their canonical (de-aliased) name, and a line for every key
    whose canonical name another key already has."""
    canonical_to_source: dict[str, str] = {}
    duplicated = []
    for key in source.keys:
        canonical = layout.canonical(key)
        if canonical in canonical_to_source:
            duplicated.append(f"{key} (also stored as {canonical_to_source[canonical]})")
        canonical_to_source[canonical] = key
    return canonical_to_source, duplicated


def _unmapped(layout: CheckpointLayout, canonical_to_source: Mapping[str, str]) -> list[str]:
    """Source keys that are neither a parameter, nor a tied copy, nor an ignored buffer."""
    used = {spec.key for spec in layout.tensors.values()}
    tied_keys = {hf_key for hf_key, _ in layout.tied}
    ignored = [re.compile(pattern) for pattern in layout.ignored]
    return [
        canonical_to_source[c]
        for c in canonical_to_source
        if c not in used and c not in tied_keys and not any(p.search(c) for p in ignored)
    ]


def _wrong_shapes(
    layout: CheckpointLayout,
    source: TensorSource,
    our_shapes: Mapping[str, tuple[int, ...]],
    canonical_to_source: Mapping[str, str],
) -> list[str]:
    """A line for every stored parameter (or tied copy) whose shape is not the one our
    shapes imply."""
    wrong = []
    expected_shapes = [
        (spec.key, tuple(spec.transform.hf_shape(tuple(our_shapes[path]))), "")
        for path, spec in layout.tensors.items()
    ] + [(hf_key, tuple(our_shapes[path]), " (tied)") for hf_key, path in layout.tied]
    for hf_key, expected, note in expected_shapes:
        source_key = canonical_to_source.get(hf_key)
        if source_key is None:
            continue
        got = tuple(source.shape(source_key))
        if got != expected:
            wrong.append(f"{hf_key}: shape {got}, expected {expected}{note}")
    return wrong


def _refuse_mismatches(source: TensorSource, mismatches: Mapping[str, list[str]]) -> None:
    """Raises CheckpointError listing every non-empty list of `mismatches` (title ->
    items)."""
    problems = [_listing(title, items) for title, items in mismatches.items() if items]
    if problems:
        raise CheckpointError(
            f"{source.description} does not match its config:\n" + "\n".join(problems)
        )


def match_layout(
    layout: CheckpointLayout,
    source: TensorSource,
    our_shapes: Mapping[str, tuple[int, ...]],
) -> dict[str, str]:
    """Checks `source` against `layout` and our parameter shapes.

    Returns our path -> the source's own key for it. Raises CheckpointError listing
    every unmapped, missing, duplicated (after aliasing) and wrongly shaped tensor, or
    naming a tensor to be read that is not floating point.
    """
    if set(our_shapes) != set(layout.tensors):
        raise AssertionError(
            f"layout and model disagree: {sorted(set(our_shapes) ^ set(layout.tensors))}"
        )
    canonical_to_source, duplicated = _index_by_canonical_key(layout, source)
    missing = [spec.key for spec in layout.tensors.values() if spec.key not in canonical_to_source]
    _refuse_mismatches(source, {
        "tensors the config does not explain (unmapped)": _unmapped(layout, canonical_to_source),
        "tensors the config needs but the checkpoint lacks (missing)": missing,
        "tensors stored more than once (duplicated)": duplicated,
        "tensors of the wrong shape": _wrong_shapes(layout, source, our_shapes, canonical_to_source),
    })
    source_keys = {path: canonical_to_source[spec.key] for path, spec in layout.tensors.items()}
    read_keys = list(source_keys.values()) + [
        canonical_to_source[hf_key] for hf_key, _ in layout.tied if hf_key in canonical_to_source
    ]
    refuse_non_floating((key, source.dtype(key), source.location(key)) for key in read_keys)
    return source_keys


def convert_tensors(
    layout: CheckpointLayout,
    source: TensorSource,
    our_shapes: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
) -> Iterable[tuple[str, np.ndarray]]:
    """Yields (our path, array in our layout and `dtype`) for every parameter, one at a
    time so that a large checkpoint never sits in host memory twice (with a progress
    bar, or a log line every PROGRESS_LOG_SECONDS and at the end)."""
    source_keys = match_layout(layout, source, our_shapes)
    for hf_key, our_path in layout.tied:
        _check_tied_copy(layout, source, hf_key, source_keys[our_path])
    with Progress(len(layout.tensors), f"read {source.description}", unit="tensors",
                  log_interval=PROGRESS_LOG_SECONDS) as progress:
        for path, spec in layout.tensors.items():
            hf = source.read(source_keys[path])
            yield path, spec.transform.to_ours(hf, tuple(our_shapes[path])).astype(dtype)
            progress.update()


def _check_tied_copy(
    layout: CheckpointLayout, source: TensorSource, hf_key: str, tied_to_key: str
) -> None:
    """A stored copy of a tied tensor must equal the tensor it is tied to."""
    stored_key = next((k for k in source.keys if layout.canonical(k) == hf_key), None)
    if stored_key is None:
        return
    if not np.array_equal(source.read(stored_key), source.read(tied_to_key)):
        raise CheckpointError(
            f"{source.description}: {stored_key} differs from {tied_to_key}, the tensor "
            "it is tied to, but the config says tie_word_embeddings=true. Fix the config "
            "(set it to false) or the checkpoint."
        )
