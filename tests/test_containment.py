"""A run touches nothing outside its own files: hostile manifests, links planted where
the run's files go, a user's files inside the run's folders. Each probe puts hostile
input in and expects the files byte-identical or a one-line refusal (exit 2) out."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import in_process
import pytest
from conftest import write_scratch_inputs

from pretty_jax.core.errors import UserError
from pretty_jax.core.manifest import LOCK, MANIFEST, SCHEMA, check_output_dir
from pretty_jax.core.own_files import LinkRefused
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.training import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = DATA / "flores101_devtest"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")
VICTIM = b"the user's file, outside the output directory\n"


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file and link under `root` (links by their target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            found[key] = path.read_bytes()
    return found


@pytest.fixture
def victim(tmp_path) -> Path:
    """A user's folder outside any output directory, with one file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_bytes(VICTIM)
    return folder


def _manifest(root: Path, files: list, kind: str = "experiment") -> None:
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"schema": SCHEMA, "kind": kind, "files": [MANIFEST, LOCK, *files], "dirs": []}
    (root / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


def _run_cli(pair, out: Path, *extra: str) -> subprocess.CompletedProcess:
    foundation, sft = pair
    flags = ["--dtype=float32", f"--data={FLORES}", "--source_lang=eng", "--target_lang=fra", "--limit=2",
             f"--foundation={foundation}", f"--sft={sft}", "--priors=none,sft", "--max_new_tokens=4",
             "--batch_size=2", "--noalign", "--sweep_prior_token_counts=", f"--output_dir={out}", *extra]
    return in_process.run(*flags)


def _one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


# 1. Containment: the manifest cannot name anything outside the directory ---------------


@pytest.mark.parametrize("entry", ["absolute", "dotdot", "not a string", "through a link"])
def test_a_manifest_naming_anything_outside_is_refused_naming_it_before_anything_is_touched(
    tmp_path, victim, entry
):
    out = tmp_path / "out"
    out.mkdir()
    if entry == "through a link":
        (out / "data").symlink_to(victim)
    hostile = {"absolute": str(victim / "victim.txt"), "dotdot": "../outside/victim.txt", "not a string": 5,
               "through a link": "data/victim.txt"}[entry]
    _manifest(out, [hostile, "results.json"])
    (out / "results.json").write_text("{}")
    before, victim_before = _snapshot(out), _snapshot(victim)
    for refuse in (lambda: check_output_dir(out, "--output_dir"),  # before any model loads
                   lambda: RunDirectory.open(out, "experiment", "--output_dir")):
        with pytest.raises(UserError) as refused:
            refuse()
        message = str(refused.value)
        assert "\n" not in message and str(out / MANIFEST) in message, message
    assert _snapshot(out) == before and _snapshot(victim) == victim_before


@needs_data
def test_the_run_command_refuses_a_hostile_manifest_in_one_line(pair, tmp_path, victim):
    out = tmp_path / "out"
    _manifest(out, ["../outside/victim.txt"])
    before, victim_before = _snapshot(out), _snapshot(victim)
    line = _one_line_refusal(_run_cli(pair, out, "--overwrite"))
    assert line.startswith(f"error: {out / MANIFEST}: not a pretty_jax manifest (entry '../outside/victim.txt'")
    assert _snapshot(out) == before and _snapshot(victim) == victim_before


def test_a_folder_an_older_pretty_jax_recorded_as_trees_is_refused_with_what_to_do(tmp_path):
    out = tmp_path / "organism"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.txt").write_text("the user's\n")
    manifest = {"schema": "pretty_jax/manifest/1", "kind": "organism", "files": [MANIFEST, LOCK], "dirs": [],
                "trees": ["data"]}
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = _snapshot(out)
    with pytest.raises(UserError) as refused:
        RunDirectory.open(out, "organism", "--organism_dir")
    message = str(refused.value)
    assert message.startswith(f"{out / MANIFEST}: an older pretty_jax recorded whole folders here (data)")
    assert "Choose another --organism_dir, or move this folder away" in message and "\n" not in message
    assert _snapshot(out) == before


# 2. Links where the run's own files go ---------------------------------------------------


@pytest.mark.parametrize("name", [LOCK, MANIFEST])
def test_a_link_at_the_lock_or_the_manifest_is_refused_and_its_target_untouched(tmp_path, victim, name):
    out = tmp_path / "out"
    _manifest(out, [])
    (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(victim / "victim.txt")
    with pytest.raises(LinkRefused, match=rf"^{out / name} is a symbolic link"):
        RunDirectory.open(out, "experiment", "--output_dir")
    assert (victim / "victim.txt").read_bytes() == VICTIM


@pytest.mark.parametrize("where", ["the file", "its .tmp", "a folder on the way", "a hard link"])
def test_a_write_never_goes_through_a_link(tmp_path, victim, where):
    out = tmp_path / "out"
    directory = RunDirectory.open(out, "experiment", "--output_dir")
    try:
        directory.write_text("eng-fra/results.json", "{}")
        target = {"the file": out / "eng-fra" / "results.json", "its .tmp": out / "eng-fra" / "results.json.tmp",
                  "a folder on the way": out / "eng-fra", "a hard link": out / "eng-fra" / "results.json"}[where]
        if target.is_dir():
            (target / "results.json").unlink()
            target.rmdir()
        else:
            target.unlink(missing_ok=True)
        if where == "a hard link":
            os.link(victim / "victim.txt", target)
            with pytest.raises(LinkRefused, match=rf"^{target} has another hard link"):
                os.close(directory.open_to_change("eng-fra/results.json", os.O_WRONLY | os.O_APPEND))
        else:
            target.symlink_to(victim if where == "a folder on the way" else victim / "victim.txt")
            with pytest.raises(LinkRefused, match=rf"^{target} is a symbolic link"):
                directory.write_text("eng-fra/results.json", "new")
            with pytest.raises(LinkRefused):
                directory.retire()
    finally:
        directory.close()
    assert _snapshot(victim) == {"victim.txt": VICTIM}


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("planted", ["eng-fra/sft.jsonl", "results.json.tmp"])
def test_a_link_planted_in_a_finished_run_is_refused_on_resume_naming_it(pair, tmp_path, victim, planted):
    out = tmp_path / "out"
    first = _run_cli(pair, out)
    assert first.returncode == 0, first.stderr[-3000:]
    (victim / "victim.txt").write_bytes(b'{"torn": ')  # what a torn stage line looks like
    (out / planted).unlink(missing_ok=True)
    (out / planted).symlink_to(victim / "victim.txt")
    line = _one_line_refusal(_run_cli(pair, out))
    assert line.startswith(f"error: {out / planted} is a symbolic link"), line
    assert (victim / "victim.txt").read_bytes() == b'{"torn": '


# 3. Files, not trees: a user's file inside the run's folders stays ----------------------


@pytest.fixture(scope="module")
def scratch_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    write_scratch_inputs(root, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=32)
    return root


def _train_settings(inputs: Path, out: Path, **changes) -> TrainSettings:
    values = dict(output_dir=str(out), train_file=str(inputs / "corpus.txt"), init="scratch",
                  model_config=str(inputs / "config.json"), tokenizer=str(inputs / "tokenizer"), max_seq_len=16,
                  batch_size=2, train_steps=2, warmup_steps=0, save_every=1, log_every=1, seed=1)
    return TrainSettings(**(values | changes))


@pytest.mark.slow
def test_a_users_files_inside_hf_and_train_state_survive_a_rerun_and_overwrite(scratch_inputs, tmp_path):
    out = tmp_path / "run"
    train(_train_settings(scratch_inputs, out))
    users = {"hf/README.md": b"# my model card\n", "train_state/notes.txt": b"lr 1e-3 was too high\n",
             "train_state/step_00000002/mine.txt": b"keep me\n"}
    for name, content in users.items():
        (out / name).write_bytes(content)
    train(_train_settings(scratch_inputs, out))  # the same command again: resumes, exports again
    train(_train_settings(scratch_inputs, out, overwrite=True, train_steps=3, save_every=3))
    for name, content in users.items():
        assert (out / name).read_bytes() == content, name
    assert (out / "hf" / "model.safetensors").exists()
    assert sorted(p.name for p in (out / "train_state").iterdir() if p.name.startswith("step_")) == [
        "step_00000002", "step_00000003"]  # the old state's folder stays only for the user's file
    assert sorted(p.name for p in (out / "train_state" / "step_00000002").iterdir()) == ["mine.txt"]


def test_a_link_where_a_train_output_goes_is_refused_naming_it(scratch_inputs, tmp_path, victim):
    out = tmp_path / "run"
    train(_train_settings(scratch_inputs, out))
    (out / "hf" / "config.json").unlink()
    (out / "hf" / "config.json").symlink_to(victim / "victim.txt")
    with pytest.raises(LinkRefused, match=rf"^{out / 'hf' / 'config.json'} is a symbolic link"):
        train(_train_settings(scratch_inputs, out, overwrite=True))
    assert _snapshot(victim) == {"victim.txt": VICTIM}
