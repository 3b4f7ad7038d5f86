"""Malformed GGUF files: truncated at many places, foreign, or with a count, an offset,
a type or a shape corrupted, and metadata of the wrong type or range. Each is refused
with one line naming the file and what is wrong, through `load_model` and through a
command (exit 2), never a numpy message or a traceback."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.core.errors import UserError

gguf = pytest.importorskip("gguf")
from gguf_files import gguf_cache, write_gguf  # noqa: E402,F401 (gguf_cache: an autouse fixture)

# What a numpy or struct message reads like: none may reach the user.
RAW_MESSAGES = ("out of bounds", "reshape", "dtype", "buffer", "unpack", "Traceback", "index ")


@pytest.fixture(scope="module")
def valid(jax_checkpoint, tmp_path_factory):
    """(the bytes of a valid Q8_0 GGUF file, gguf-py's reading of it)."""
    path = write_gguf(jax_checkpoint("llama"), tmp_path_factory.mktemp("valid") / "model.gguf", "Q8_0")
    return path.read_bytes(), gguf.GGUFReader(path)


def _replace(data: bytes, offset: int, fmt: str, value) -> bytes:
    packed = struct.pack("<" + fmt, value)
    return data[:offset] + packed + data[offset + len(packed):]


def _record_field(reader, name: str, part: int) -> int:
    """Where part `part` of tensor `name`'s record lies (parts: name length, name,
    dimension count, dimensions, type, offset)."""
    field = next(t for t in reader.tensors if t.name == name).field
    return field.offset + sum(p.nbytes for p in field.parts[:part])


def corrupted(case: str, data: bytes, reader) -> bytes:
    """The valid file's bytes with one corruption."""
    header_end = reader.data_offset
    quantised = next(t.name for t in reader.tensors if t.tensor_type.name == "Q8_0")
    last = reader.tensors[-1].name
    truncations = {
        "empty": 0, "inside the magic": 2, "inside the counts": 20, "inside the metadata": header_end // 3,
        "inside the tensor records": header_end - 5, "at the tensor data": header_end,
        "inside the tensor data": (len(data) + header_end) // 2, "one byte short": len(data) - 1,
    }
    if case in truncations:
        return data[: truncations[case]]
    edits = {
        "bad magic": lambda: b"GGML" + data[4:],
        "unknown version": lambda: _replace(data, 4, "I", 7),
        "zero metadata count": lambda: _replace(data, 16, "Q", 0),
        "zero tensor count": lambda: _replace(data, 8, "Q", 0),
        "huge tensor count": lambda: _replace(data, 8, "Q", 2**40),
        "huge key length": lambda: _replace(data, 24, "Q", 2**40),
        "tensor offset past the end": lambda: _replace(data, _record_field(reader, last, 5), "Q", 2**30),
        "tensor type changed": lambda: _replace(data, _record_field(reader, quantised, 4), "I", 0),  # to F32
        "unknown tensor type": lambda: _replace(data, _record_field(reader, quantised, 4), "I", 200),
        "dimension count zeroed": lambda: _replace(data, _record_field(reader, quantised, 2), "I", 0),
        "dimension doubled": lambda: _replace(
            data, _record_field(reader, quantised, 3), "Q",
            2 * int(next(t for t in reader.tensors if t.name == quantised).shape[0]),
        ),
    }
    return edits[case]()


# Each corruption, and what the refusal must say.
CASES = {
    "empty": r"not a GGUF file \(it is empty\)",
    "inside the magic": r"truncated GGUF file: it ends at byte 2, inside the magic number",
    "inside the counts": r"truncated GGUF file: it ends at byte 20, inside the tensor and metadata counts",
    "inside the metadata": r"corrupted GGUF file: .*'tokenizer.ggml.tokens'\) claims 448 items, more than",
    "inside the tensor records": r"truncated GGUF file: it ends at byte [\d,]+, inside the type and offset of tensor record 21 of 21",
    "at the tensor data": r"truncated GGUF file: tensor 'output.weight' \(Q8_0, 30,464 bytes\) needs bytes",
    "inside the tensor data": r"truncated GGUF file: tensor '[\w.]+' \(Q8_0, [\d,]+ bytes\) needs bytes",
    "one byte short": r"truncated GGUF file: tensor 'output_norm.weight' \(F32, 256 bytes\) needs bytes",
    "bad magic": r"not a GGUF file \(it starts with b'GGML', not b'GGUF'\)",
    "unknown version": r"GGUF version 7 is not supported \(versions 2 and 3 are\)",
    "zero metadata count": r"corrupted GGUF file: tensor record 1 of 21 \('general.architecture'\) has 8 dimensions",
    "zero tensor count": r"holds no tensors \(a vocabulary-only GGUF file\?\); it is not a model",
    "huge tensor count": r"corrupted GGUF file: it claims 21 metadata entries and 1,099,511,627,776 tensors, more than",
    "huge key length": r"truncated GGUF file: it ends at byte [\d,]+, inside the key of metadata entry 1 of 21",
    "tensor offset past the end": r"corrupted GGUF file: tensor 'output_norm.weight' starts at data offset 1,073,741,824",
    "tensor type changed": r"corrupted GGUF file: tensor '[\w.]+' starts at data offset [\d,]+, but the tensor before it, 'output.weight' \(F32, 448 x 64\),",
    "unknown tensor type": r"tensor 'output.weight' has ggml type 200, which the installed gguf package does not know",
    "dimension count zeroed": r"corrupted GGUF file: tensor record 1 of 21 \('output.weight'\) has 0 dimensions",
    "dimension doubled": r"corrupted GGUF file: tensor '[\w.]+' starts at data offset [\d,]+, but the tensor before it, 'output.weight' \(Q8_0, 448 x 128\),",
}


def _check_one_line(message: str, path) -> None:
    assert "\n" not in message.strip() and message.startswith(str(path)), message
    assert not any(raw in message for raw in RAW_MESSAGES), message


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_gguf_is_refused_in_one_line_naming_the_file(valid, tmp_path, gguf_cache, case):
    path = tmp_path / "model.gguf"
    path.write_bytes(corrupted(case, *valid))
    with pytest.raises(UserError, match=CASES[case]) as refused:
        loading.load_model(path)
    _check_one_line(str(refused.value), path)
    assert not gguf_cache.exists() or list(gguf_cache.iterdir()) == []  # nothing half-written is cached


@pytest.mark.parametrize("case", ["inside the metadata", "bad magic", "tensor type changed"])
def test_the_convert_command_refuses_a_malformed_gguf_in_one_line(valid, tmp_path, case):
    path = tmp_path / "model.gguf"
    path.write_bytes(corrupted(case, *valid))
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.convert", f"--gguf={path}", f"--out_dir={tmp_path / 'out'}"],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    _check_one_line(result.stderr.removeprefix("error: "), path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"llama.attention.head_count": 0}, r"metadata llama.attention.head_count=0 is not a whole number >= 1"),
        ({"llama.block_count": "two"}, r"metadata llama.block_count='two' is not a whole number >= 1"),
        ({"llama.rope.freq_base": float("nan")}, r"metadata llama.rope.freq_base=nan is not a finite number above 0"),
        ({"llama.attention.layer_norm_rms_epsilon": -1.0}, r"layer_norm_rms_epsilon=-1.0 is not a finite number above 0"),
        ({"tokenizer.ggml.bos_token_id": 100_000}, r"tokenizer.ggml.bos_token_id=100000 is past the vocabulary"),
        ({"general.alignment": 24}, r"corrupted GGUF file: general.alignment=24 is not a power of two"),
    ],
)
def test_metadata_of_the_wrong_type_or_range_is_refused_by_key(jax_checkpoint, tmp_path, metadata, message):
    path = write_gguf(jax_checkpoint("llama"), tmp_path / "model.gguf", metadata=metadata)
    with pytest.raises(UserError, match=message) as refused:
        loading.load_model(path)
    _check_one_line(str(refused.value), path)
