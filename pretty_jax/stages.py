"""Resumable stages: append-only jsonl files of finished examples.

Each stage of a run (SFT outputs, the foundation's outputs with a prior, ...) writes
one JSON object per finished example, in example order, flushed and fsync'ed after
every batch. A run killed at any moment (even `kill -9`) leaves a file whose complete
lines are finished examples; a torn last line is dropped on restart. A restarted run
reads the file, skips the examples it holds, and appends the rest, so it ends with
exactly the lines of an uninterrupted run.

The run's defining settings are kept in `run_config.json`; a different configuration
in the same output directory is refused unless the user asks to overwrite.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from pretty_jax.errors import UserError

RUN_CONFIG = "run_config.json"


class JsonlStage:
    """One stage's records, keyed by example id, in the order they were written."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = []
        if path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete, torn = lines[:-1], lines[-1]
        records = []
        for number, line in enumerate(complete, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(
                    f"{self.path}:{number}: not a JSON record; the file was edited or corrupted. "
                    "Remove it (its stage will run again) or use --overwrite"
                ) from None
        if torn:  # a kill during a write: drop the partial line
            with open(self.path, "r+b") as f:
                f.truncate(len(raw) - len(torn))
        self.records = records

    @property
    def done(self) -> int:
        return len(self.records)

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.records}

    def append(self, records: Iterable[Mapping[str, Any]], write: bool = True) -> None:
        """Adds finished records; `write=False` on processes other than process 0."""
        records = [dict(r) for r in records]
        self.records += records
        if not write or not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def prepare_output_dir(output_dir: Path, config: Mapping[str, Any], overwrite: bool) -> None:
    """Creates `output_dir` for this configuration, or checks that an existing run there
    had the same one (then it resumes). `overwrite` starts over."""
    path = output_dir / RUN_CONFIG
    if path.exists() and overwrite:
        shutil.rmtree(output_dir)
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
        if changed:
            details = "; ".join(f"--{k}: was {previous.get(k)!r}, now {config.get(k)!r}" for k in changed)
            raise UserError(
                f"{output_dir} holds a run with a different configuration ({details}). "
                "Use another --output_dir, or --overwrite to discard that run"
            )
        return
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"{output_dir} is not empty and holds no pretty_jax run; use another --output_dir or --overwrite"
            )
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dict(config), indent=1, sort_keys=True))
    temporary.replace(path)
