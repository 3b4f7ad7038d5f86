"""The persistent compilation cache: on by default under $XDG_CACHE_HOME, reused by a
rerun, off with --nocompilation_cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = """
import sys, jax, jax.numpy as jnp
from absl import flags
from pretty_jax.cli import mesh_flags
flags.FLAGS(sys.argv)
mesh_flags.mesh_from_flags()
print(jax.jit(lambda x: jnp.cumsum(x * 3 + 1))(jnp.arange(5)).tolist())
"""


def _run(cache_home: Path, *flags: str) -> str:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", PROGRAM, "prog", *flags], capture_output=True, text=True,
                            env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def _entries(directory: Path) -> dict[str, float]:
    return {str(p.relative_to(directory)): p.stat().st_mtime for p in directory.rglob("*") if p.is_file()}


def test_programs_are_kept_under_the_cache_home_and_reused(tmp_path):
    assert _run(tmp_path) == "[1, 5, 12, 22, 35]"
    cache = tmp_path / "pretty_jax" / "jax_compilation_cache"
    first = _entries(cache)
    assert first, "nothing was cached"
    assert _run(tmp_path) == "[1, 5, 12, 22, 35]"
    assert _entries(cache) == first  # the rerun read the entries and wrote none


def test_nocompilation_cache_writes_nothing(tmp_path):
    assert _run(tmp_path, "--nocompilation_cache") == "[1, 5, 12, 22, 35]"
    assert not (tmp_path / "pretty_jax").exists()


def test_an_unusable_cache_folder_is_one_line_naming_it_and_the_way_out(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "a-file" / "cache"), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pretty_jax.train", f"--output_dir={tmp_path / 'out'}",
               f"--train_file={tmp_path / 'corpus.txt'}", "--init=scratch"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: the compilation cache folder {tmp_path / 'a-file' / 'cache'}"), line
    assert "--nocompilation_cache" in line
    assert not (tmp_path / "out").exists()
