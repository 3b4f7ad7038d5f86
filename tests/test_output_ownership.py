"""pretty_jax never deletes or replaces a user's files: `train --output_dir` and
`convert --out_dir` remove only what an earlier run recorded in the directory's
manifest, refuse a directory that holds no pretty_jax output (with or without
--overwrite), check every input before retiring the old output, and hold the
directory's lock while they run."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_scratch_inputs
from safetensors.numpy import load_file

from pretty_jax.checkpoints import loading
from pretty_jax.core.manifest import LOCK, MANIFEST, RETIRED
from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import OutputLocked, RunDirectory
from pretty_jax.training import TrainSettings, train, train_state

ROOT = Path(__file__).resolve().parents[1]
USER_FILES = {
    "notes.txt": b"my notes\n",
    "metrics.jsonl": b'{"mine": true}\n',  # a user's file under a name train writes
    "config.json": b'{"not": "a model"}\n',  # ... and one under a name convert writes
    "data/raw.bin": bytes(range(256)),
    "a.csv": b"1,2\n",
    "b.csv": b"3,4\n",
}


def _snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A from-scratch run's inputs: tokenizer, HF config and corpus of a tiny LLaMA."""
    root = tmp_path_factory.mktemp("inputs")
    write_scratch_inputs(root, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=32)
    return root


def _settings(inputs: Path, output_dir: Path, **overrides) -> TrainSettings:
    values = dict(
        output_dir=str(output_dir), train_file=str(inputs / "corpus.txt"), init="scratch",
        model_config=str(inputs / "config.json"), tokenizer=str(inputs / "tokenizer"), max_seq_len=16,
        batch_size=2, train_steps=3, warmup_steps=0, save_every=3, log_every=1, seed=1,
    )
    return TrainSettings(**(values | overrides))


@pytest.fixture(scope="module")
def finished_train(inputs, tmp_path_factory):
    """A finished train output (tests copy it before changing anything)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(_settings(inputs, out))
    return out


def _copy_of(directory: Path, tmp_path: Path) -> Path:
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    return copy


def _cli(module: str, flag_values: dict, tmp_path: Path, background: bool = False):
    """`python -m module --flag=value ...`: run to the end, or started in the background."""
    command = [sys.executable, "-m", module] + [
        f"--{k}" if v is True else f"--{k}={v}" for k, v in flag_values.items()
    ]
    env = os.environ | {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    if background:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)


def _train_flags(settings: TrainSettings) -> dict:
    defaults = TrainSettings(output_dir="", train_file="")
    return {
        f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
        if getattr(settings, f.name) != getattr(defaults, f.name) or f.name in ("output_dir", "train_file")
    }


def _assert_complete_train_output(out: Path, steps: int) -> None:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    assert [p.name for p in (out / "train_state").iterdir()] == [f"step_{steps:08d}"]
    loading.load_model(out / "hf")  # loads: config, weights and tokenizer are all there
    assert (out / "hf" / "tokenizer.json").exists()
    manifest = _manifest(out)
    assert manifest["kind"] == "train" and "trees" not in manifest  # files are recorded one by one
    written = {p.relative_to(out).as_posix() for sub in ("hf", "train_state") for p in (out / sub).rglob("*")
               if p.is_file()}
    assert set(manifest["files"]) == {"metrics.jsonl", MANIFEST, LOCK} | written
    assert not (out / RETIRED).exists()  # nothing retired left


# --- train --------------------------------------------------------------------------


def test_train_overwrite_refuses_a_directory_of_foreign_files_and_leaves_them_intact(inputs, tmp_path):
    out = tmp_path / "mine"
    _write_files(out, USER_FILES)
    before = _snapshot(out)
    result = _cli("pretty_jax.train", _train_flags(_settings(inputs, out, overwrite=True)), tmp_path)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: --output_dir={out} is not empty and holds no pretty_jax output")
    assert "a.csv, b.csv, config.json, data, metrics.jsonl and 1 more" in line
    assert "with or without --overwrite" in line and "Traceback" not in result.stderr
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted({name.split("/")[0] for name in USER_FILES})


def test_train_overwrite_of_a_finished_run_keeps_a_users_file_and_writes_a_complete_run(
    inputs, finished_train, tmp_path
):
    out = _copy_of(finished_train, tmp_path)
    _write_files(out, {"notes.txt": b"my notes\n", "plots/loss.png": b"\x89PNG..."})
    old_weights = load_file(out / "hf" / "model.safetensors")
    train(_settings(inputs, out, overwrite=True, learning_rate=1e-2, train_steps=4, save_every=2))
    assert (out / "notes.txt").read_bytes() == b"my notes\n"
    assert (out / "plots" / "loss.png").read_bytes() == b"\x89PNG..."
    _assert_complete_train_output(out, steps=4)
    info = train_state.read_info(out / "train_state" / "step_00000004")
    assert info["settings"]["learning_rate"] == 1e-2
    new_weights = load_file(out / "hf" / "model.safetensors")
    assert any(not np.array_equal(new_weights[k], old_weights[k]) for k in old_weights)


@pytest.mark.parametrize("mistake", ["init_nowhere", "model_config_nowhere", "bad_train_file", "broken_weights"])
def test_train_mistyped_input_with_overwrite_leaves_the_old_output_intact(
    inputs, finished_train, tmp_path, mistake
):
    out = _copy_of(finished_train, tmp_path)
    (out / "notes.txt").write_text("mine")
    broken = tmp_path / "broken"  # a checkpoint whose config reads but whose weights do not
    shutil.copytree(out / "hf", broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 16)
    bad_text = tmp_path / "bad.txt"
    bad_text.write_bytes(b"fine\nbroken \xff\n")
    settings = {
        "init_nowhere": dict(init=str(tmp_path / "no-such-model"), model_config=None),
        "model_config_nowhere": dict(model_config=str(tmp_path / "no-config.json")),
        "bad_train_file": dict(train_file=str(bad_text)),
        "broken_weights": dict(init=str(broken), model_config=None),
    }[mistake]
    # A model that fails to load is found after the directory was opened (and locked):
    # the lock file then names the refused run, and nothing else changes.
    skip = (LOCK,) if mistake == "broken_weights" else ()
    before = _snapshot(out, skip)
    with pytest.raises((UserError, OSError)) as refused:
        train(_settings(inputs, out, overwrite=True, learning_rate=5e-3, **settings))
    assert _snapshot(out, skip) == before
    message = str(refused.value)
    expected = {"init_nowhere": "--init=", "model_config_nowhere": "--model_config=",
                "bad_train_file": f"{bad_text}:2: not valid UTF-8", "broken_weights": "model.safetensors"}
    assert expected[mistake] in message


@pytest.mark.slow
def test_a_second_train_into_the_same_directory_is_refused_naming_the_holder(inputs, tmp_path):
    out = tmp_path / "busy"
    settings = _settings(inputs, out, train_steps=200, save_every=200, log_every=50)
    first = _cli("pretty_jax.train", _train_flags(settings), tmp_path, background=True)
    holder = f"pid {first.pid} on {socket.gethostname()} since "
    deadline = time.monotonic() + 120
    while not ((out / LOCK).exists() and holder in (out / LOCK).read_text()):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.02)
    with pytest.raises(OutputLocked, match=rf"--output_dir={out} is in use by {holder}"):
        train(settings)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert f"trained model: {out / 'hf'}" in stdout
    _assert_complete_train_output(out, steps=200)


def test_train_into_an_older_layout_without_a_manifest_is_refused(inputs, finished_train, tmp_path):
    out = _copy_of(finished_train, tmp_path)
    (out / MANIFEST).unlink()
    (out / LOCK).unlink()
    before = _snapshot(out)
    for overwrite in (False, True):
        with pytest.raises(UserError, match=r"holds no pretty_jax output \(it has hf, metrics.jsonl, train_state\)"):
            train(_settings(inputs, out, overwrite=overwrite))
        assert _snapshot(out) == before


def test_train_refuses_a_users_file_where_an_output_goes(inputs, finished_train, tmp_path):
    out = _copy_of(finished_train, tmp_path)
    # A run that stopped before it exported, and a user's model put into hf/ since.
    manifest = _manifest(out)
    manifest["files"] = [name for name in manifest["files"] if not name.startswith("hf/")]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out / "hf")
    _write_files(out, {"hf/model.safetensors": b"my own model"})
    before = _snapshot(out, (LOCK,))
    with pytest.raises(UserError, match=r"has hf/model.safetensors, which pretty_jax train did not write"):
        train(_settings(inputs, out, overwrite=True))
    assert _snapshot(out, (LOCK,)) == before


# --- convert ------------------------------------------------------------------------


def test_convert_overwrite_refuses_a_directory_of_foreign_files_and_leaves_them_intact(finished_train, tmp_path):
    out = tmp_path / "mine"
    _write_files(out, USER_FILES)
    before = _snapshot(out)
    flags = {"hf_dir": finished_train / "hf", "out_dir": out, "dtype": "float32", "overwrite": True}
    result = _cli("pretty_jax.convert", flags, tmp_path)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: --out_dir={out} is not empty and holds no pretty_jax output")
    assert "a.csv, b.csv, config.json, data, metrics.jsonl and 1 more" in line
    assert "Traceback" not in result.stderr
    assert _snapshot(out) == before


def test_convert_overwrite_keeps_a_users_file_and_writes_a_complete_checkpoint(finished_train, tmp_path):
    source, out = finished_train / "hf", tmp_path / "converted"
    loading.convert_checkpoint(source, out, "float32")
    (out / "notes.txt").write_text("mine")
    loading.convert_checkpoint(source, out, "bfloat16", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    model = loading.load_model(out)
    assert model.dtype == np.dtype("bfloat16")
    side_files = sorted(p.name for p in source.iterdir() if p.name != "model.safetensors")
    manifest = _manifest(out)
    assert manifest["kind"] == "convert" and "trees" not in manifest
    assert sorted(manifest["files"]) == sorted(side_files + [loading.PARAMS_FILE, MANIFEST, LOCK])
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest["files"] + ["notes.txt"])
    with pytest.raises(UserError, match="already holds a converted checkpoint; pass --overwrite"):
        loading.convert_checkpoint(source, out, "float32")


def test_converting_a_converted_directory_copies_no_bookkeeping_files(finished_train, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    loading.convert_checkpoint(finished_train / "hf", first, "float32")
    (first / "config.json.tmp").write_text("half written")
    loading.convert_checkpoint(first, second, "float32")
    assert not (second / "config.json.tmp").exists()
    manifest = _manifest(second)
    assert manifest["kind"] == "convert"
    assert set(manifest["files"]) == {p.name for p in second.iterdir()}
    assert MANIFEST in manifest["files"] and "config.json.tmp" not in manifest["files"]
    first_params = load_file(first / loading.PARAMS_FILE)
    second_params = load_file(second / loading.PARAMS_FILE)
    assert all(np.array_equal(first_params[k], second_params[k]) for k in first_params)


@pytest.mark.parametrize("mistake", ["hf_dir_nowhere", "broken_weights"])
def test_convert_mistyped_input_with_overwrite_leaves_the_old_output_intact(finished_train, tmp_path, mistake):
    out = tmp_path / "converted"
    loading.convert_checkpoint(finished_train / "hf", out, "float32")
    (out / "notes.txt").write_text("mine")
    broken = tmp_path / "broken"
    shutil.copytree(finished_train / "hf", broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 16)
    source = {"hf_dir_nowhere": tmp_path / "no-such-model", "broken_weights": broken}[mistake]
    skip = (LOCK,) if mistake == "broken_weights" else ()
    before = _snapshot(out, skip)
    with pytest.raises((UserError, OSError)):
        loading.convert_checkpoint(source, out, "bfloat16", overwrite=True)
    assert _snapshot(out, skip) == before


def test_convert_into_an_older_converted_checkpoint_without_a_manifest_is_refused(finished_train, tmp_path):
    out = tmp_path / "converted"
    loading.convert_checkpoint(finished_train / "hf", out, "float32")
    (out / MANIFEST).unlink()
    (out / LOCK).unlink()
    before = _snapshot(out)
    with pytest.raises(UserError, match=r"holds no pretty_jax output .*older pretty_jax.*--overwrite no longer"):
        loading.convert_checkpoint(finished_train / "hf", out, "float32", overwrite=True)
    assert _snapshot(out) == before


def test_convert_into_a_directory_in_use_is_refused_naming_the_holder(finished_train, tmp_path):
    out = tmp_path / "converted"
    loading.convert_checkpoint(finished_train / "hf", out, "float32")
    holder = RunDirectory.open(out, "convert", "--out_dir")
    try:
        before = _snapshot(out)
        with pytest.raises(OutputLocked, match=rf"in use by pid {os.getpid()} on {socket.gethostname()} since"):
            loading.convert_checkpoint(finished_train / "hf", out, "float32", overwrite=True)
        assert _snapshot(out) == before
    finally:
        holder.close()
