"""A hostile user's probes: a run never destroys or corrupts files it did not write,
never runs twice into one directory, resumes byte for byte after a kill or a full
disk, and refuses (before any model loads) what would give a wrong number silently.
What a process does (killed, interrupted, holding its directory) is probed with
`python -m pretty_jax.run` subprocesses, the rest with the command run in process
(tests/in_process.py)."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import in_process
import pytest

from pretty_jax import experiments
from pretty_jax.core.errors import UserError
from pretty_jax.core.manifest import LOCK, MANIFEST, RETIRED
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.experiments import stages
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")
pytestmark = needs_data
FLORES = DATA / "flores101_devtest"
MUSE = DATA / "muse" / "{source_iso}-{target_iso}.txt"
# What a run writes besides its bookkeeping (the lock holds a pid and a time).
BOOKKEEPING = (LOCK, MANIFEST, "run_config.json")


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


def _flags(pair, *extra: str) -> list[str]:
    foundation, sft = pair
    return ["--dtype=float32", f"--data={FLORES}", "--source_lang=eng", "--target_lang=fra", "--limit=6",
            f"--foundation={foundation}", f"--sft={sft}", "--priors=none,sft", "--max_new_tokens=8",
            "--batch_size=4", *extra]


def _ok(*flags: str) -> subprocess.CompletedProcess:
    result = in_process.run(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _refused(*flags: str) -> str:
    """Runs a command that must fail as a user error; returns its stderr."""
    result = in_process.run(*flags)
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "models loaded" not in result.stderr  # refused before any model loaded
    return result.stderr


def _snapshot(directory: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*")) if p.is_file() and p.name not in skip
    }


def _users_files(directory: Path) -> dict[str, bytes]:
    """A user's folder: notes, a model, data."""
    (directory / "model").mkdir(parents=True)
    (directory / "model" / "model.safetensors").write_bytes(os.urandom(4096))
    (directory / "notes.txt").write_text("my notes\n")
    (directory / "data.jsonl").write_text('{"id": 1}\n')
    return _snapshot(directory)


def _settings(pair, out: Path, **changes) -> experiments.Settings:
    foundation, sft = pair
    base = experiments.Settings(
        task="translation", data=str(FLORES), split="devtest", source_lang="eng", target_langs=("fra",), limit=6,
        template=get_task("translation").default_template, num_shots=0,
        priors=(PriorSpec("none"), PriorSpec("sft", 1)), sweep=(),
        decode=DecodeConfig(max_new_tokens=8, stop_strings=("\n",)), batch_size=4, output_dir=out,
        foundation=str(foundation), sft=str(sft), dtype="float32",
    )
    return dataclasses.replace(base, **changes)


# 1. Never lose a user's files ---------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_directory_of_someone_elses_files_is_refused_and_left_as_it_was(pair, tmp_path, overwrite):
    before = _users_files(tmp_path / "mine")
    stderr = _refused(*_flags(pair, f"--output_dir={tmp_path / 'mine'}", *(["--overwrite"] if overwrite else [])))
    assert "holds no pretty_jax output" in stderr and "notes.txt" in stderr and "model" in stderr
    assert _snapshot(tmp_path / "mine") == before


def test_the_demo_flagfile_refuses_a_directory_holding_files(tmp_path):
    before = _users_files(tmp_path / "checkout")
    stderr = _refused(f"--flagfile={ROOT / 'configs' / 'demo.cfg'}", f"--output_dir={tmp_path / 'checkout'}",
                      f"--organism_dir={tmp_path / 'organism'}")
    assert "holds no pretty_jax output" in stderr
    assert _snapshot(tmp_path / "checkout") == before
    assert not (tmp_path / "organism").exists()  # refused before building anything
    assert "--overwrite" not in (ROOT / "configs" / "demo.cfg").read_text()


def test_overwrite_replaces_the_run_and_nothing_else(pair, tmp_path):
    out = tmp_path / "out"
    _ok(*_flags(pair, f"--output_dir={out}"))
    (out / "notes.txt").write_text("the user's notes\n")
    (out / "eng-fra" / "analysis.ipynb").write_text("{}\n")
    _ok(*_flags(pair, f"--output_dir={out}", "--priors=none", "--overwrite"))
    assert (out / "notes.txt").read_text() == "the user's notes\n"
    assert (out / "eng-fra" / "analysis.ipynb").read_text() == "{}\n"
    assert not (out / "eng-fra" / "sft-1tok.jsonl").exists()  # the old run's stage is gone...
    assert not (out / RETIRED).exists()  # ...and so is the copy set aside
    results = json.loads((out / "results.json").read_text())
    assert set(results["pairs"]["eng-fra"]["systems"]) == {"none", "sft"}


def test_overwrite_with_a_mistyped_input_leaves_the_finished_run_byte_identical(pair, tmp_path):
    out = tmp_path / "out"
    _ok(*_flags(pair, f"--output_dir={out}"))
    before = _snapshot(out)
    for mistake, expected in (
        (f"--foundation={tmp_path / 'Llama-2-7b'}", "does not exist"),
        (f"--sft={tmp_path}", "has no config.json"),
        (f"--data={tmp_path / 'flores'}", "does not exist"),
        ("--target_lang=xxx", "xxx"),
        (f"--dictionary={tmp_path / 'muse.txt'}", "does not exist"),
    ):
        extra = ["--priors=none,dictionary"] if mistake.startswith("--dictionary") else []
        stderr = _refused(*_flags(pair, f"--output_dir={out}", "--overwrite", *extra, mistake))
        assert expected in stderr, (mistake, stderr)
        assert _snapshot(out) == before, mistake


def test_a_second_run_into_the_same_directory_is_refused_while_the_first_finishes(pair, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "pretty_jax.run", *_flags(pair, f"--output_dir={out}")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 300
    while not (out / LOCK).exists() or f"pid {first.pid} " not in (out / LOCK).read_text():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.01)
    # The first run holds the lock from here to its end; stopped (not killed) it holds it
    # for as long as the second takes, however fast the first would otherwise finish.
    first.send_signal(signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first run ended before it could be held"
        stderr = _refused(*_flags(pair, f"--output_dir={out}"))
    finally:
        first.send_signal(signal.SIGCONT)
    assert f"is in use by pid {first.pid} on" in stderr and " since 20" in stderr
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    for name in ("none.jsonl", "sft.jsonl", "sft-1tok.jsonl"):
        ids = [json.loads(line)["id"] for line in (out / "eng-fra" / name).read_text().splitlines()]
        assert ids == [f"devtest-{i:05d}" for i in range(6)], name
    _ok(*_flags(pair, f"--output_dir={out}"))  # the lock died with its holder


# Kill -9 and a full disk --------------------------------------------------------------

KILL_FLAGS = ("--target_lang=fra,deu", "--limit=12", "--align", "--align_prior_token_counts=0,1", "--max_new_tokens=12")


@pytest.fixture(scope="module")
def uninterrupted(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    _ok(*_flags(pair, *KILL_FLAGS, f"--output_dir={out}"))
    return _snapshot(out, skip=BOOKKEEPING)


@pytest.mark.parametrize("phase,log_line", [
    ("sft stage", "eng-fra SFT: 4/12"),
    ("prior stage", "foundation, 2 systems x 2 pairs"),  # the first record of the foundation systems' pool
    ("scoring", "eng-fra: scoring"),
    ("alignment", "eng-fra: alignment statistics"),
])
def test_kill_9_in_any_phase_then_the_same_command_gives_the_same_files(pair, tmp_path, uninterrupted, phase, log_line):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pretty_jax.run", *_flags(pair, *KILL_FLAGS, f"--output_dir={out}")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stderr:
        if log_line in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"{phase}: never saw {log_line!r}"
    assert not (out / "results.json").exists(), f"{phase}: the run finished before it was killed"
    _ok(*_flags(pair, *KILL_FLAGS, f"--output_dir={out}"))
    assert _snapshot(out, skip=BOOKKEEPING) == uninterrupted


def test_ctrl_c_prints_one_line_exits_130_releases_the_lock_and_the_same_command_resumes(pair, tmp_path, uninterrupted):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pretty_jax.run", *_flags(pair, *KILL_FLAGS, f"--output_dir={out}")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stderr:
        if "eng-fra SFT: 4/12" in line:
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    assert process.wait() == 130, rest[-3000:]
    assert "Traceback" not in rest and rest.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
    assert not (out / "results.json").exists(), "the run finished before it was interrupted"
    held = os.open(out / LOCK, os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: would raise if still held
    finally:
        os.close(held)
    _ok(*_flags(pair, *KILL_FLAGS, f"--output_dir={out}"))
    assert _snapshot(out, skip=BOOKKEEPING) == uninterrupted


def test_a_full_disk_in_the_middle_of_a_stage_leaves_a_resumable_directory(pair, tmp_path, monkeypatch):
    whole = experiments.run_experiment(_settings(pair, tmp_path / "whole", limit=12))
    real_write, calls = os.write, []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 3:  # the SFT stage's third append: half of it lands, then the disk is full
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(stages.os, "write", full_disk)
    with pytest.raises(UserError, match="No space left on device.*rerun the same command to resume"):
        experiments.run_experiment(_settings(pair, tmp_path / "full", limit=12))
    monkeypatch.setattr(stages.os, "write", real_write)
    lines = (tmp_path / "full" / "eng-fra" / "sft.jsonl").read_bytes()
    # cut back to the end of the last whole append: a prefix of the finished stage
    assert lines.endswith(b"\n") and 0 < lines.count(b"\n") < 12
    assert (tmp_path / "whole" / "eng-fra" / "sft.jsonl").read_bytes().startswith(lines)
    assert experiments.run_experiment(_settings(pair, tmp_path / "full", limit=12)) == json.loads(
        json.dumps(whole))
    assert _snapshot(tmp_path / "full", skip=BOOKKEEPING) == _snapshot(tmp_path / "whole", skip=BOOKKEEPING)


# 4. Counts out of range -----------------------------------------------------------------


@pytest.mark.parametrize("flag", [
    "--prior_token_count=-1", "--prior_token_count=0", "--prior_word_count=-1", "--num_shots=-1", "--limit=0",
    "--max_new_tokens=0", "--batch_size=0", "--temperature=-1", "--top_p=0", "--top_k=-2", "--max_len=1",
    "--sweep_prior_token_counts=-1", "--align_prior_token_counts=-1", "--agreement_k=0", "--stats_chunk=0", "--seed=-1",
])
def test_a_number_out_of_range_is_refused_naming_its_flag(pair, tmp_path, flag):
    stderr = _refused(*_flags(pair, f"--output_dir={tmp_path / 'out'}", "--priors=none,sft,oracle", flag))
    assert flag.split("=")[0] in stderr
    assert not (tmp_path / "out").exists()


# 5. Refined ids ---------------------------------------------------------------------------


def test_refined_ids_that_match_nothing_are_an_error_and_some_missing_are_counted(pair, tmp_path):
    refined = tmp_path / "refined.jsonl"
    refined.write_text('{"id": "0", "text": "Le chat"}\n{"id": "1", "text": "La maison"}\n')
    stderr = _refused(*_flags(pair, f"--output_dir={tmp_path / 'a'}", "--priors=none,refined",
                              f"--refined_file={refined}"))
    assert f"--refined_file={refined}: no id matches" in stderr and "devtest-00000" in stderr
    refined.write_text('{"id": "devtest-00000", "text": "Le chat"}\n{"id": "devtest-00001", "text": "La maison"}\n')
    result = _ok(*_flags(pair, f"--output_dir={tmp_path / 'b'}", "--priors=none,refined", f"--refined_file={refined}"))
    assert "lacks 4 of 6 examples" in result.stderr
    assert json.loads((tmp_path / "b" / "results.json").read_text())["pairs"]["eng-fra"]["refined_missing"] == 4
    assert "the refined file lacks 4 of 6 examples" in (tmp_path / "b" / "report.md").read_text()


# 6. Resume by content ---------------------------------------------------------------------


def test_an_input_corrected_in_place_is_refused_and_a_trailing_slash_is_no_change(pair, tmp_path):
    foundation, sft = pair
    refined = tmp_path / "refined.jsonl"
    refined.write_text("".join(json.dumps({"id": f"devtest-{i:05d}", "text": "Le chat"}) + "\n" for i in range(6)))
    out = tmp_path / "out"
    flags = _flags(pair, f"--output_dir={out}", "--priors=none,refined", f"--refined_file={refined}")
    _ok(*flags)
    before = _snapshot(out, skip=(LOCK,))
    _ok(*flags[:-1], f"--refined_file={tmp_path}/./refined.jsonl", f"--foundation={foundation}/")  # same inputs
    assert _snapshot(out, skip=(LOCK,)) == before
    refined.write_text(refined.read_text().replace("Le chat", "La chatte"))
    stderr = _refused(*flags)
    assert f"eng-fra/refined-1word.jsonl: --refined_file {refined}: refined.jsonl changed" in stderr
    # A model retrained into the same directory: same shapes, new weights.
    copy = tmp_path / "sft"
    subprocess.run(["cp", "-r", str(sft), str(copy)], check=True)
    out2 = tmp_path / "out2"
    _ok(*_flags(pair, f"--output_dir={out2}", f"--sft={copy}"))
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"
    weights.write_bytes(bytes(data))
    stderr = _refused(*_flags(pair, f"--output_dir={out2}", f"--sft={copy}"))
    assert f"--sft {copy}: model.safetensors changed (modification time" in stderr


# 7. Extending a finished run --------------------------------------------------------------


def test_adding_priors_sweep_sizes_and_languages_reuses_every_finished_stage(pair, tmp_path):
    out = tmp_path / "out"
    experiments.run_experiment(_settings(pair, out))
    stage_times = {p: p.stat().st_mtime_ns for p in (out / "eng-fra").glob("*.jsonl")}
    before = _snapshot(out / "eng-fra")
    results = experiments.run_experiment(_settings(
        pair, out, target_langs=("fra", "deu"), sweep=(0, 1, 2),
        priors=(PriorSpec("none"), PriorSpec("sft", 1), PriorSpec("oracle", 1), PriorSpec("dictionary", 1, "words")),
        dictionary=str(MUSE),
    ))
    assert {p: p.stat().st_mtime_ns for p in stage_times} == stage_times  # not rewritten, not recomputed
    assert {k: v for k, v in _snapshot(out / "eng-fra").items() if k in before} == before
    assert set(results["pairs"]) == {"eng-fra", "eng-deu"}
    assert set(results["pairs"]["eng-fra"]["systems"]) == {"none", "sft-1tok", "oracle-1tok", "dictionary-1word",
                                                            "sft-2tok", "sft"}
    # What would change the finished outputs is still refused, naming the setting.
    with pytest.raises(UserError, match=r"--max_new_tokens: was 8, now 9"):
        experiments.run_experiment(_settings(pair, out, decode=DecodeConfig(max_new_tokens=9, stop_strings=("\n",))))
    with pytest.raises(UserError, match=r"--prompt_template: was"):
        experiments.run_experiment(_settings(pair, out, template="{source} in {tgt_lang}:"))


# 8. Empty references ----------------------------------------------------------------------


def test_an_empty_reference_is_counted_and_reported(pair, tmp_path):
    flores = tmp_path / "flores"
    flores.mkdir()
    (flores / "eng.devtest").write_text("The cat sleeps.\nThe dog runs.\nA bird sings.\n")
    (flores / "fra.devtest").write_text("Le chat dort.\n\nUn oiseau chante.\n")
    out = tmp_path / "out"
    result = _ok(*_flags(pair, f"--output_dir={out}", f"--data={flores}", "--priors=none"))
    assert "1 of 3 references are empty" in result.stderr
    assert json.loads((out / "results.json").read_text())["pairs"]["eng-fra"]["empty_references"] == 1
    assert "1 of 3 references are empty" in (out / "report.md").read_text()


# 9. Early, exact errors -------------------------------------------------------------------


def test_output_dir_and_flag_mistakes_are_named_early_with_exit_status_2(pair, tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine\n")
    assert f"--output_dir={a_file} is a file" in _refused(*_flags(pair, f"--output_dir={a_file}"))
    assert a_file.read_text() == "mine\n"
    assert "--output_dir=/proc/pretty_jax" in _refused(*_flags(pair, "--output_dir=/proc/pretty_jax/out"))
    assert "--mode" in _refused("--mode=everything", f"--output_dir={tmp_path / 'o'}")
    assert "unknown language" in _refused(*_flags(pair, "--target_lang=xxx", f"--output_dir={tmp_path / 'o'}")).lower()


def test_align_mode_owns_its_directory_by_the_same_rules(pair, tmp_path):
    foundation, sft = pair
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "Translate into French: The cat sleeps.\\nFrench:"}\n')
    flags = ["--mode=align", "--dtype=float32", f"--foundation={foundation}", f"--sft={sft}",
             f"--prompts_file={prompts}", "--max_new_tokens=6", "--batch_size=2"]
    before = _users_files(tmp_path / "mine")
    assert "holds no pretty_jax output" in _refused(*flags, f"--output_dir={tmp_path / 'mine'}", "--overwrite")
    assert _snapshot(tmp_path / "mine") == before
    out = tmp_path / "out"
    _ok(*flags, f"--output_dir={out}")
    assert "--align_prior_token_counts: was [0, 1, 2], now [0, 2]" in _refused(*flags, f"--output_dir={out}", "--align_prior_token_counts=0,2")
    _ok(*flags, f"--output_dir={out}", "--align_prior_token_counts=0,2", "--overwrite")
    assert list(json.loads((out / "alignment.json").read_text())["by_prior_tokens"]) == ["0", "2"]
