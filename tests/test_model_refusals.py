"""Finite or refused, and sizes checked before anything is built: a checkpoint with a
NaN weight, a NaN config value or non-finite first logits is refused at load naming the
file and tensor; config.json sizes are checked against the weights' index and lengths
against the model's positions and the machine's memory before a model loads; a broken
tokenizer.json is named; every JSON file an alignment or a training writes is strict
(null with a reason, never NaN), and the explorer page's data always parses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import in_process
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax.alignment import explorer, summary
from pretty_jax.alignment.runner import AlignmentConfig, ModelPair, PromptExample, run_alignment
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import CheckpointError, ConfigError, UserError
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.models import Model, memory, new_cache
from pretty_jax.training.metrics_log import MetricsLog

ROOT = Path(__file__).resolve().parents[1]
FLORES = ROOT.parent / "shared" / "data" / "flores101_devtest"


def _strict(text: str):
    """`json.loads` that refuses NaN and Infinity, as JSON.parse and jq do."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _set_weight(directory: Path, key: str, value: float) -> None:
    tensors = load_file(directory / "model.safetensors")
    tensors[key] = tensors[key].copy()
    tensors[key].flat[5] = value
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _edit_config(directory: Path, **values) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | values))


def _run(*flags: str) -> subprocess.CompletedProcess:
    return in_process.run(*flags)


def _refused(out: Path, *flags: str) -> str:
    """A run that must fail as one `error:` line, exit 2, without a traceback; returns it."""
    result = _run("--mode=experiment", f"--data={FLORES}", "--source_lang=eng", "--target_lang=fra", "--limit=2",
                  "--priors=none", "--batch_size=2", "--dtype=float32", f"--output_dir={out}", *flags)
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


# Finite or refused --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight", "model.norm.weight"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_weight_is_refused_naming_the_file_and_tensor(jax_checkpoint, tmp_path, key, value):
    directory = _copy(jax_checkpoint("llama"), tmp_path / "model")
    _set_weight(directory, key, value)
    with pytest.raises(CheckpointError, match=rf"^{directory / 'model.safetensors'}: tensor {key} .*holds NaN or inf"):
        loading.load_model(directory, "float32")


def test_a_non_finite_weight_in_a_converted_checkpoint_names_its_file(jax_checkpoint, tmp_path):
    source = _copy(jax_checkpoint("llama"), tmp_path / "model")
    _set_weight(source, "model.layers.1.self_attn.k_proj.weight", float("nan"))
    converted = tmp_path / "converted"
    loading.convert_checkpoint(source, converted, "float32")
    with pytest.raises(CheckpointError, match=rf"{converted / loading.PARAMS_FILE}: tensor layers.1.attn.k_proj "):
        loading.load_model(converted)


@pytest.mark.parametrize("preset,key", [("llama", "rms_norm_eps"), ("bloom", "layer_norm_epsilon"),
                                        ("gemma3", "query_pre_attn_scalar"), ("gemma3", "rms_norm_eps")])
def test_a_non_finite_config_value_is_refused_naming_config_json_and_key(jax_checkpoint, tmp_path, preset, key):
    directory = _copy(jax_checkpoint(preset), tmp_path / "model")
    _edit_config(directory, **{key: float("nan")})
    with pytest.raises(ConfigError, match=rf"{directory / 'config.json'}: {key}=nan is not a finite number"):
        loading.load_model(directory)


def test_finite_weights_whose_first_logits_are_not_are_refused_naming_config_json(jax_checkpoint, tmp_path):
    directory = _copy(jax_checkpoint("llama"), tmp_path / "model")
    _set_weight(directory, "model.layers.0.mlp.down_proj.weight", 1e38)  # finite, overflows the activations
    with pytest.raises(CheckpointError, match=r"config.json: every weight is finite, but the model's logits"):
        loading.load_model(directory, "float32")


@pytest.mark.slow
def test_the_run_command_refuses_a_nan_sft_model_in_one_line_instead_of_scoring_it(
        jax_checkpoint, jax_sft_stand_in, tmp_path):
    sft = _copy(jax_sft_stand_in("llama"), tmp_path / "sft")
    _set_weight(sft, "model.layers.0.mlp.down_proj.weight", float("nan"))
    line = _refused(tmp_path / "out", f"--foundation={jax_checkpoint('llama')}", f"--sft={sft}", "--priors=none,sft",
                    "--max_new_tokens=4", "--align")
    assert f"{sft / 'model.safetensors'}: tensor model.layers.0.mlp.down_proj.weight" in line
    assert not (tmp_path / "out" / "results.json").exists()


# Strict JSON --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nan_alignment(jax_checkpoint):
    """An alignment report of a model against a copy with one NaN weight, built in memory
    (loading refuses such a model; this is the writer's last line of defence)."""
    directory = jax_checkpoint("llama")
    foundation = loading.load_model(directory, "float32")
    leaves, treedef = jax.tree.flatten(foundation.params)
    leaves[-1] = leaves[-1].at[0].set(jnp.nan)
    sft = dataclasses.replace(foundation, params=jax.tree.unflatten(treedef, leaves))
    assert isinstance(sft, Model)
    examples = [PromptExample(f"s{i}", sentence) for i, sentence in enumerate(SENTENCES[:3])]
    config = AlignmentConfig(prior_tokens=(0, 1), decode=DecodeConfig(max_new_tokens=4), batch_size=2, chunk=4)
    return run_alignment(ModelPair(foundation, sft, load_tokenizer(directory), ("lm", "sft")), examples, config)


def test_alignment_json_holds_null_with_a_reason_never_nan(nan_alignment):
    report = _strict(summary.report_json(nan_alignment))
    overall = report["by_prior_tokens"]["0"]["overall"]
    assert overall["kl_sft_lm"] is None
    assert "not finite" in overall["reasons"]["kl_sft_lm"]
    steps = report["by_prior_tokens"]["0"]["examples"][0]["steps"]["kl_sft_lm"]
    assert steps and all(value is None for value in steps)


def test_the_explorer_page_data_always_parses(nan_alignment):
    html = explorer.page_html(nan_alignment[summary.EXPLORER_DATA], "nan pair")
    encoded = html.split('<script type="application/octet-stream" id="data">', 1)[1].split("</script>", 1)[0]
    import base64
    import gzip
    data = _strict(gzip.decompress(base64.b64decode(encoded)).decode("utf-8"))
    assert len(data["examples"]) == 3
    assert data["examples"][0]["runs"]["0"]["kl"][0] is None


def test_a_diverged_loss_is_logged_as_null_with_its_reason(tmp_path):
    output = RunDirectory.open(tmp_path / "run", "train", "--output_dir")
    log = MetricsLog(output)
    log.append([{"step": 1, "loss": 2.5}, {"step": 2, "loss": float("nan"), "grad_norm": float("inf")}])
    log.keep_until(2)
    output.close()
    lines = [_strict(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {"step": 1, "loss": 2.5}
    assert lines[1]["loss"] is None and lines[1]["grad_norm"] is None
    assert lines[1]["reasons"] == {"loss": "not finite (nan)", "grad_norm": "not finite (inf)"}


# Sizes and lengths before anything is built --------------------------------------------


def test_a_config_claiming_100000_layers_is_refused_in_seconds_naming_config_json(jax_checkpoint, tmp_path):
    directory = _copy(jax_checkpoint("llama"), tmp_path / "model")
    _edit_config(directory, num_hidden_layers=100_000)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"{directory / 'config.json'} says the model has 100000 layers, "
                                              r"but .* holds 2 \(model.layers.0 to model.layers.1\)"):
        loading.load_model(directory)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("values,message", [
    ({"num_hidden_layers": 100_000}, "says the model has 100000 layers"),
    ({"max_position_embeddings": 0}, "config.json: max_position_embeddings=0 must be >= 1"),
    ({"hidden_size": "wide"}, "config.json: hidden_size='wide' is not a whole number"),
    ({"intermediate_size": 2.5}, "config.json: intermediate_size=2.5 is not a whole number"),
])
def test_config_sizes_are_refused_naming_config_json_before_the_output_directory_exists(
        jax_checkpoint, tmp_path, values, message):
    directory = _copy(jax_checkpoint("llama"), tmp_path / "model")
    _edit_config(directory, **values)
    line = _refused(tmp_path / "out", f"--foundation={directory}", "--max_new_tokens=4")
    assert message in line and "--max_new_tokens" not in line
    assert not (tmp_path / "out").exists()


def test_lengths_beyond_the_machines_memory_are_refused_with_the_estimate(jax_checkpoint, tmp_path):
    line = _refused(tmp_path / "out", f"--foundation={jax_checkpoint('bloom')}", "--max_new_tokens=100000000",
                    "--max_len=200000000")
    assert line.startswith("error: --max_new_tokens=100000000: the KV cache alone would need at least ")
    assert "GB" in line and "more than this machine's" in line
    assert not (tmp_path / "out").exists()


def test_max_len_beyond_the_models_positions_is_refused_naming_config_json(jax_checkpoint, tmp_path):
    config = loading.load_config(jax_checkpoint("llama"))
    with pytest.raises(UserError, match=r"max_len=2000 exceeds the 256 positions .*config.json"):
        memory.check_lengths(config, 16, 2000, 2, np.float32, "config.json")
    with pytest.raises(UserError, match=r"max_new_tokens=256 leaves no room for a prompt in max_len=256"):
        memory.check_lengths(config, 256, None, 2, np.float32, "config.json")
    memory.check_lengths(config, 16, 256, 2, np.float32, "config.json")


@pytest.mark.parametrize("preset", ["llama", "bloom", "gemma3"])
def test_the_kv_cache_estimate_is_what_the_cache_allocates(jax_checkpoint, preset):
    config = loading.load_config(jax_checkpoint(preset))
    cache = new_cache(config, 3, 11, jnp.bfloat16)
    allocated = sum(array.nbytes for array in (*cache.keys, *cache.values))
    assert memory.kv_cache_bytes(config, 3, 11, jnp.bfloat16) == allocated


# Tokenizer files ------------------------------------------------------------------------


@pytest.mark.parametrize("content,message", [
    ("", "tokenizer.json: it is empty"),
    ('{"version": ', "tokenizer.json: not valid UTF-8 JSON"),
    ("[1, 2]", "tokenizer.json: expected a JSON object, found list"),
    ("{}", "tokenizer.json: not a tokenizer file"),
])
def test_a_broken_tokenizer_json_is_refused_naming_it(jax_checkpoint, tmp_path, content, message):
    directory = _copy(jax_checkpoint("llama"), tmp_path / "model")
    (directory / "tokenizer.json").write_text(content)
    with pytest.raises(UserError, match=message):
        loading.load_tokenizer_of(directory)
    line = _refused(tmp_path / "out", f"--foundation={directory}", "--max_new_tokens=4")
    assert f"{directory / 'tokenizer.json'}" in line
    assert not (tmp_path / "out").exists()
