"""The run's loss curve: `OUTPUT_DIR/metrics.jsonl`, one JSON object per line.

    {"step": 12, "loss": 3.1, "grad_norm": 0.8, "learning_rate": 2e-4, "target_tokens": 4096}
    {"step": 100, "eval_loss": 2.9, "eval_tokens": 51200}
    {"step": 140, "loss": null, ..., "reasons": {"loss": "not finite (nan)"}}

Every line is strict JSON: a value that is not finite (a diverged loss) is written as
null, with the reason beside it.

A resumed run first cuts the file back to the steps of the state it resumes from (a
killed run may have logged steps it never saved, and a kill may have cut a line in
half), so the file always reads as one uninterrupted run. The file is recorded in the
output directory's manifest before the first write and never written through a link
(see `run_dir`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

from pretty_jax.core import strict_json
from pretty_jax.core.own_files import read_own
from pretty_jax.core.run_dir import RunDirectory

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """The log in `output` (written by the process that holds it actively)."""

    def __init__(self, output: RunDirectory):
        self.output, self.path = output, output.path / METRICS_FILE
        self.writes = output.active

    def records(self) -> list[dict[str, Any]]:
        """Every complete record (a half-written last line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in read_own(self.path).decode("utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def keep_until(self, step: int) -> None:
        """Drops the records of steps after `step` (all of them for step 0)."""
        if not self.writes:
            return
        kept = [r for r in self.records() if r["step"] <= step]
        self.output.write_text(METRICS_FILE, "".join(strict_json.dumps(strict_json.nulls_with_reasons(r)) + "\n" for r in kept))

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        if not self.writes:
            return
        fd = self.output.open_to_change(METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.writelines(strict_json.dumps(strict_json.nulls_with_reasons(r)) + "\n" for r in records)
