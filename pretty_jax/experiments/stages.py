"""Resumable stages: append-only jsonl files of finished examples.

Each stage of a run (SFT outputs, the foundation's outputs with a prior, ...) writes
one JSON object per finished example, in example order, flushed and fsync'ed after
every batch. A run killed at any moment (even `kill -9`) leaves a file whose complete
lines are finished examples; a torn last line is dropped on restart. A restarted run
reads the file, skips the examples it holds, and appends the rest, so it ends with
exactly the lines of an uninterrupted run.

A batch is appended with one write; a write that fails (a full disk) is cut back to
the last complete batch, so the directory stays resumable.

The run's settings and each stage's inputs (with content fingerprints) are kept in
`run_config.json` (`RunRecord`): a run that would change them is refused, one that
only adds stages (a prior, a sweep size, a language) reuses the stages it shares.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from pretty_jax.core.errors import UserError
from pretty_jax.core.fingerprint import describe_change
from pretty_jax.core.own_files import open_own, read_own
from pretty_jax.core.run_dir import RunDirectory

RUN_CONFIG = "run_config.json"
RUN_CONFIG_SCHEMA = "pretty_jax/run_config/2"
# Stage inputs whose change re-runs the stage instead of refusing the run.
RERUN_INPUTS = ("sft_prompt", "refined_prompt")


class JsonlStage:
    """One stage's records, keyed by example id, in the order they were written."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = []
        if path.exists():
            self._load()

    def _load(self) -> None:
        raw = read_own(self.path)
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
            fd = open_own(self.path, os.O_RDWR)
            try:
                os.ftruncate(fd, len(raw) - len(torn))
            finally:
                os.close(fd)
        self.records = records

    @property
    def done(self) -> int:
        return len(self.records)

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.records}

    def append(self, records: Iterable[Mapping[str, Any]], write: bool = True) -> None:
        """Adds finished records; `write=False` on processes other than process 0."""
        records = [dict(r) for r in records]
        if write and records:
            self._write_batch(records)
        self.records += records

    def _write_batch(self, records: list[dict[str, Any]]) -> None:
        blob = "".join(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n" for record in records).encode("utf-8")
        fd = open_own(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        size = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(blob):
                written += os.write(fd, blob[written:])
            os.fsync(fd)
        except OSError as e:  # e.g. ENOSPC: leave the file as it was before this batch
            os.ftruncate(fd, size)
            raise UserError(
                f"{self.path}: could not append {len(records)} records ({e.strerror}); the stage keeps its "
                f"{self.done} finished examples: fix the cause and rerun the same command to resume"
            ) from None
        finally:
            os.close(fd)


class RunRecord:
    """`run_config.json`: the settings every output of a run depends on, and each stage
    file's own inputs, as recorded when it started.

        {"schema": "pretty_jax/run_config/2",
         "settings": {name: value},                # e.g. "max_new_tokens", "foundation"
         "stages": {"<pair>/<stage>.jsonl": {name: value}}}

    A value that is an input record ({"path", "fingerprint"}) is compared by path and
    content; changed content is named with the file that changed.
    """

    def __init__(self, run_dir: RunDirectory):
        self.run_dir = run_dir
        self.settings: dict[str, Any] | None = None
        self.stages: dict[str, dict[str, Any]] = {}
        path = run_dir.path / RUN_CONFIG
        if run_dir.active and path.exists():
            try:
                recorded = json.loads(read_own(path).decode("utf-8"))
                if recorded.get("schema") != RUN_CONFIG_SCHEMA:
                    raise ValueError(f"schema {recorded.get('schema')!r}, expected {RUN_CONFIG_SCHEMA!r}")
            except ValueError as e:
                raise UserError(f"{path}: not this version's run configuration ({e}); use another --output_dir "
                                "or --overwrite") from None
            self.settings, self.stages = recorded["settings"], recorded["stages"]

    def conflicts(self, settings: Mapping[str, Any], stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """What these settings and stage inputs would change in the recorded run."""
        if self.settings is None:
            return []
        found = _differences("", self.settings, settings)
        for name, inputs in stages.items():
            if name in self.stages:
                found += _differences(f"{name}: ", _fixed(self.stages[name]), _fixed(inputs))
        return found

    def start(self, settings: Mapping[str, Any]) -> None:
        """Records the settings (keeping the stages a compatible earlier run recorded)."""
        self.settings = json.loads(json.dumps(dict(settings)))
        self._write()

    def reset(self) -> None:
        """Forgets the recorded run (after it was retired)."""
        self.settings, self.stages = None, {}

    def stage(self, name: str, inputs: Mapping[str, Any]) -> JsonlStage:
        """The stage file `name` (relative to the run), its inputs recorded before it is
        written; conflicts were refused by `conflicts`, so a recorded stage whose inputs
        differ changed only in `RERUN_INPUTS`: its file is removed (before the new inputs
        are recorded, so a kill in between leaves it to be re-run again) and run again."""
        inputs = json.loads(json.dumps(dict(inputs)))
        recorded = self._recorded_inputs(name, inputs)
        rerun = recorded is not None and recorded != inputs
        if rerun:
            logging.warning("re-running %s: %s", name, "; ".join(_differences("", recorded, inputs)))
            if self.run_dir.active and self.run_dir.owns(name):
                self.run_dir.remove([name])
        if self.stages.get(name) != inputs:
            self.stages[name] = inputs
            self._write()
        stage = JsonlStage(self.run_dir.record(name))
        if rerun and not self.run_dir.active:  # process 0 removed the old records
            stage.records = []
        return stage

    def _recorded_inputs(self, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The recorded inputs of stage `name` (None if new); a run recorded before
        prompt formats existed prompted every model plain with --prompt_template."""
        if name not in self.stages:
            return None
        recorded = dict(self.stages[name])
        for key in RERUN_INPUTS:
            if key in inputs and key not in recorded:
                recorded[key] = {"format": "plain", "prompt_template": (self.settings or {}).get("prompt_template")}
        return recorded

    def _write(self) -> None:
        record = {"schema": RUN_CONFIG_SCHEMA, "settings": self.settings, "stages": self.stages}
        self.run_dir.write_text(RUN_CONFIG, json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")


def _fixed(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's inputs without those whose change only re-runs it."""
    return {key: value for key, value in inputs.items() if key not in RERUN_INPUTS}


def _differences(where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    found = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), json.loads(json.dumps(new.get(key)))
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict) and "fingerprint" in before and "fingerprint" in after:
            if before["path"] != after["path"]:
                found.append(f"{where}--{key}: was {before['path']}, now {after['path']}")
            else:
                found.append(f"{where}" + (describe_change(f"--{key} {after['path']}", before["fingerprint"],
                                                           after["fingerprint"]) or f"--{key} changed"))
        else:
            found.append(f"{where}--{key}: was {before!r}, now {after!r}")
    return found
