"""The README's Python examples run as written, with a tiny checkpoint and the sample
Flores data in place of the paths they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_python_example_runs(index, jax_checkpoint, tmp_path, monkeypatch, capsys):
    code = BLOCKS[index].replace("/path/to/Llama-2-7b-hf", str(jax_checkpoint("llama")))
    if "/data/flores101_dataset" in code:
        if not DATA.exists():
            pytest.skip("../shared/data (real sample data) is absent")
        code = code.replace("/data/flores101_dataset", str(DATA / "flores101_devtest"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md, python example {index + 1}", "exec"), {"__name__": "readme"})
