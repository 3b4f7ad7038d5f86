"""GGUF import: our dequantisers against gguf-py's, and llama.cpp files written from
tiny HF checkpoints, read by us as transformers reads the same file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import command_server

from pretty_jax.checkpoints import loading, parity
from pretty_jax.checkpoints.gguf import quants
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import CheckpointError, ConfigError, MissingDependencyError
from pretty_jax.engine.batching import left_pad
from pretty_jax.models import Model

gguf = pytest.importorskip("gguf")
from gguf_files import (  # noqa: F401 (gguf_cache: an autouse fixture)
    build_tiny_gemma3,
    gguf_cache,
    random_blocks,
    run_module_without_torch,
    run_without_torch,
    write_gguf,
    write_random_k_quant_gguf,
)


@pytest.fixture(scope="module")
def gemma3_checkpoint(tmp_path_factory) -> Path:
    """A tiny Gemma 3 that its GGUF file describes completely (the tiny gemma3 preset
    has settings transformers' GGUF loader does not read)."""
    pytest.importorskip("torch", reason="tiny HF checkpoints are built with torch")
    return build_tiny_gemma3(tmp_path_factory.mktemp("gemma3-gguf"))


@pytest.fixture(scope="module")
def gguf_file(tiny_checkpoint, gemma3_checkpoint, tmp_path_factory):
    """`gguf_file(preset, tensor_type)` -> a GGUF file of that tiny checkpoint
    ("K" for random K-quant weights), written once per module."""
    written: dict[tuple[str, str], Path] = {}
    directory = tmp_path_factory.mktemp("gguf")

    def get(preset: str, tensor_type: str = "F32") -> Path:
        if (preset, tensor_type) not in written:
            path = directory / f"{preset}-{tensor_type}.gguf"
            hf_dir = gemma3_checkpoint if preset == "gemma3" else tiny_checkpoint(preset)
            if tensor_type == "K":
                write_random_k_quant_gguf(hf_dir, path)
            else:
                write_gguf(hf_dir, path, tensor_type)
            written[preset, tensor_type] = path
        return written[preset, tensor_type]

    return get


def _params(model: Model) -> dict[str, np.ndarray]:
    from flax import nnx

    return {
        ".".join(map(str, path)): np.asarray(variable.get_value())
        for path, variable in nnx.to_flat_state(model.params)
    }


@pytest.mark.parametrize("type_name", ["Q8_0"])
def test_quantised_blocks_dequantise_as_gguf_py_does(type_name):
    raw = random_blocks(type_name, 48, np.random.default_rng(0))
    rows = 3
    shape = (rows, 48 * quants.BLOCK_TYPES[type_name].block_size // rows)
    expected = gguf.quants.dequantize(raw.reshape(rows, -1), gguf.GGMLQuantizationType[type_name])
    np.testing.assert_array_equal(quants.dequantize(raw, type_name, shape), expected)


def test_bf16_tensors_dequantise_as_gguf_py_does():
    values = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    stored = gguf.quants.quantize(values, gguf.GGMLQuantizationType.BF16)
    np.testing.assert_array_equal(
        quants.dequantize(stored, "BF16", (3, 64)), gguf.quants.dequantize(stored, gguf.GGMLQuantizationType.BF16)
    )


def test_every_float_type_of_gguf_is_read_and_no_integer_type():
    readable = {kind.name for kind in gguf.GGMLQuantizationType if quants.supported(kind.name)}
    assert {"F32", "F16", "BF16", "Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"} <= readable
    assert not readable & {"I8", "I16", "I32", "I64"}


@pytest.mark.parametrize(
    "preset, tensor_type",
    [
        ("llama", "F32"), ("llama", "Q8_0"), ("llama", "K"), ("qwen2", "F32"), ("qwen2", "Q4_0"),
        ("gemma3", "F32"), ("gemma3", "Q4_0"), ("gemma3", "Q5_0"),
    ],
)
def test_gguf_logits_match_transformers_on_the_same_file(gguf_file, preset, tensor_type):
    path = gguf_file(preset, tensor_type)
    model = loading.load_model(path, "float32")
    tokenizer = loading.load_tokenizer_of(path)
    tokens, mask, positions = left_pad([tokenizer(s).input_ids for s in SENTENCES], tokenizer.pad_token_id or 0)
    reference = HFReference(path.parent, "float32", gguf_file=path.name).logits(tokens, mask)
    full, cached = parity.our_logits(model, jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(positions))
    real = mask.astype(bool)
    for ours in (full, cached):
        agreement = parity.Agreement.of(reference[real], ours[real])
        assert agreement.max_abs < 2e-4 and agreement.top1 == 1.0, agreement.line()
    assert np.abs(reference[real]).std() > 0.5  # logits that could tell a wrong weight apart


@pytest.mark.parametrize("preset", ["llama", "qwen2"])
def test_gguf_tokenizer_is_the_checkpoint_tokenizer(tiny_checkpoint, gguf_file, gguf_cache, preset):
    model = loading.load_model(gguf_file(preset))
    view = loading.model_directory(gguf_file(preset))
    assert view.parent == gguf_cache
    original, rebuilt = load_tokenizer(tiny_checkpoint(preset)), loading.load_tokenizer_of(gguf_file(preset))
    for sentence in SENTENCES:
        assert rebuilt(sentence).input_ids == original(sentence).input_ids
    assert model.dtype == np.float32  # an all-F32 file loads in float32 by default
    assert loading.model_directory(gguf_file(preset)) == view  # cached


@pytest.mark.parametrize("preset", ["llama", "qwen2", "gemma3"])
def test_gguf_tokenizer_files_are_the_ones_transformers_writes(gguf_file, tmp_path, preset):
    from transformers import AutoTokenizer

    path = gguf_file(preset, "Q8_0")
    view = loading.model_directory(path)  # rebuilt without transformers' GGUF reader
    AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(tmp_path / "reference")
    written = sorted(p.name for p in (tmp_path / "reference").iterdir())
    assert written == ["tokenizer.json", "tokenizer_config.json"]
    for name in written:
        assert (view / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


@pytest.mark.parametrize("preset", ["llama", "qwen2"])
def test_a_gguf_model_loads_where_torch_cannot_be_imported(jax_checkpoint, tmp_path, gguf_cache, preset):
    path = write_gguf(jax_checkpoint(preset), tmp_path / "model.gguf", "Q8_0")
    result = run_without_torch(
        "import json\nfrom pretty_jax.checkpoints import loading\n"
        f"model = loading.load_model({str(path)!r})\ntokenizer = loading.load_tokenizer_of({str(path)!r})\n"
        f"ids = [tokenizer(sentence).input_ids for sentence in {SENTENCES!r}]\n"
        "torch = sorted(name for name, module in sys.modules.items() if name.split('.')[0] == 'torch' and module)\n"
        "print(json.dumps({'ids': ids, 'torch': torch, 'layers': model.config.num_layers}))\n"
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["torch"] == [] and loaded["layers"] == 2
    checkpoint_tokenizer = load_tokenizer(jax_checkpoint(preset))
    assert loaded["ids"] == [checkpoint_tokenizer(sentence).input_ids for sentence in SENTENCES]
    assert len(list(gguf_cache.iterdir())) == 1  # the view, written in that process


def test_convert_cli_works_where_torch_cannot_be_imported(jax_checkpoint, tmp_path):
    path = write_gguf(jax_checkpoint("llama"), tmp_path / "model.gguf", "Q8_0")
    out = tmp_path / "converted"
    result = run_module_without_torch("convert", f"--gguf={path}", f"--out_dir={out}", "--dtype=float32")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(("pretty_jax", "."))) == [
        "config.json", "tokenizer.json", "tokenizer_config.json",  # not the view's own files
    ]
    converted, direct = _params(loading.load_model(out)), _params(loading.load_model(path, "float32"))
    assert converted.keys() == direct.keys()
    for key, value in converted.items():
        np.testing.assert_array_equal(value, direct[key], err_msg=key)


def test_parity_cli_without_torch_names_the_extra_in_one_line(jax_checkpoint, tmp_path, gguf_cache):
    path = write_gguf(jax_checkpoint("llama"), tmp_path / "model.gguf")
    result = run_module_without_torch("parity", f"--gguf={path}")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: comparing against HF transformers needs torch: pip install 'pretty_jax[test]'"
    assert not gguf_cache.exists()  # refused before the model was read


def test_a_gguf_replaced_by_one_of_the_same_size_and_time_is_read_anew(jax_checkpoint, tmp_path):
    from pretty_jax.checkpoints.gguf import importer
    from pretty_jax.core import fingerprint

    first, second = (
        write_gguf(jax_checkpoint("llama"), tmp_path / f"{theta}.gguf", metadata={"llama.rope.freq_base": theta})
        for theta in (10000.0, 20000.0)
    )
    assert first.stat().st_size == second.stat().st_size and first.read_bytes() != second.read_bytes()
    path, when = tmp_path / "model.gguf", first.stat().st_mtime_ns
    for source, theta in ((first, 10000.0), (second, 20000.0)):
        path.write_bytes(source.read_bytes())
        os.utime(path, ns=(when, when))
        view = loading.model_directory(path)
        assert loading.load_config(view).rope.theta == theta
        assert loading.load_model(path).config.rope.theta == theta
        recorded = json.loads((view / importer.SOURCE_FILE).read_text())["fingerprint"]
        assert recorded == fingerprint.model_fingerprint(path)["model.gguf"]  # what run_config.json records


def test_convert_cli_writes_a_checkpoint_equal_to_the_gguf(gguf_file, tmp_path):
    path = gguf_file("llama", "Q8_0")
    out = tmp_path / "converted"
    command = [sys.executable, "-m", "pretty_jax.convert", f"--gguf={path}", f"--out_dir={out}", "--dtype=float32"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "parameters in 21 tensors" in result.stdout
    converted, direct = loading.load_model(out), loading.load_model(path, "float32")
    converted_params, direct_params = _params(converted), _params(direct)
    assert converted_params.keys() == direct_params.keys()
    for key, value in converted_params.items():
        np.testing.assert_array_equal(value, direct_params[key], err_msg=key)
    assert load_tokenizer(out)("Der Hund").input_ids == loading.load_tokenizer_of(path)("Der Hund").input_ids
    both = subprocess.run([*command, f"--hf_dir={tmp_path}"], check=False, capture_output=True, text=True)
    assert both.returncode == 2 and "exactly one of --hf_dir" in both.stderr


parity_cli = command_server.fixture("pretty_jax.parity")  # one process serving the module's runs


@pytest.mark.parametrize("preset", ["qwen2", "gemma3"])
def test_parity_cli_compares_with_transformers_loading_the_file(parity_cli, gguf_file, preset):
    path = gguf_file(preset, "Q8_0")
    result = parity_cli(f"--gguf={path}")
    assert result.returncode == 0, result.stderr
    assert f"against HF transformers ({path})" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("parity OK max_abs=") and last.endswith("top1=1.000")
    generated = parity_cli(f"--gguf={path}", "--generate", "--max_new_tokens=6")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.strip().splitlines()[-1] == "generate parity OK identical=9/9"


def test_unsupported_architecture_is_refused_by_name(tiny_checkpoint, tmp_path):
    path = write_gguf(tiny_checkpoint("llama"), tmp_path / "model.gguf", architecture="falcon")
    message = r"GGUF architecture 'falcon' is not supported; supported: gemma3, llama, qwen2"
    with pytest.raises(ConfigError, match=message):
        loading.load_model(path)


@pytest.mark.parametrize(
    "metadata, message",
    [
        (
            {"gemma3.rope.scaling.type": "linear", "gemma3.rope.scaling.factor": 8.0},
            r"gemma3.rope.scaling.type='linear' is not supported: transformers' GGUF loader does not read it",
        ),
        ({"gemma3.rope.freq_base_swa": 20000.0}, r"gemma3.rope.freq_base_swa=20000.0 is not supported"),
        (
            {"gemma3.attention.key_length": 128},
            r"attention scores by 1/sqrt\(128\), transformers' GGUF loader by 1/sqrt\(256\)",
        ),
    ],
)
def test_gemma3_settings_transformers_does_not_read_are_refused(gemma3_checkpoint, tmp_path, metadata, message):
    path = write_gguf(gemma3_checkpoint, tmp_path / "model.gguf", metadata=metadata)
    with pytest.raises(ConfigError, match=message):
        loading.load_model(path)


@pytest.mark.parametrize("integer_type", ["I8", "I32"])
def test_integer_weight_is_refused_with_the_tensor_name(tiny_checkpoint, tmp_path, gguf_cache, integer_type):
    path = write_gguf(tiny_checkpoint("qwen2"), tmp_path / "model.gguf", types={"blk.1.ffn_up.weight": integer_type})
    with pytest.raises(
        CheckpointError, match=rf"model.gguf: tensor type not supported: blk.1.ffn_up.weight \({integer_type}\)"
    ):
        loading.load_model(path)
    assert list(gguf_cache.iterdir()) == []  # nothing half-written is cached


def test_a_load_maps_the_tensors_by_the_views_index_without_parsing_the_file(gguf_file, monkeypatch):
    from pretty_jax.checkpoints.gguf import importer, reader
    from pretty_jax.checkpoints.gguf.reader import GGUFFile, TensorDirectory

    path = gguf_file("llama", "K")  # mixed quantised and float tensors
    first = _params(loading.load_model(path))  # writes the view, index included
    parsed = GGUFFile(path).tensors
    view = loading.model_directory(path)
    indexed = TensorDirectory.from_json(path, json.loads((view / importer.TENSORS_FILE).read_text())).tensors
    assert list(indexed) == list(parsed)
    for name, tensor in parsed.items():
        assert (indexed[name].type_name, indexed[name].shape) == (tensor.type_name, tensor.shape)
        assert indexed[name].data.dtype == tensor.data.dtype
        np.testing.assert_array_equal(indexed[name].data, tensor.data)

    def no_parse(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(reader, "read_header", no_parse)
    again = _params(loading.load_model(path))
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])


def test_gguf_without_the_gguf_package_says_what_to_install(gguf_file, monkeypatch):
    path = gguf_file("qwen2")
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'pretty_jax\[gguf\]'"):
        loading.load_model(path)
