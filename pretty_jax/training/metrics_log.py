"""The run's loss curve: `OUTPUT_DIR/metrics.jsonl`, one JSON object per line.

    {"step": 12, "loss": 3.1, "grad_norm": 0.8, "learning_rate": 2e-4, "target_tokens": 4096}
    {"step": 100, "eval_loss": 2.9, "eval_tokens": 51200}
    {"step": 140, "loss": null, ..., "reasons": {"loss": "not finite (nan)"}}

Every line is strict JSON: a value that is not finite (a diverged loss) is written as
null, with the reason beside it.

A resumed run first cuts the file back to the steps of the state it resumes from (a
killed run may have logged steps it never saved, and a kill may have cut a line in
half), so the file always reads as one uninterrupted run. The trainer records the
file in the output directory's manifest before the first write (see `run_dir`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import jax

from pretty_jax.core import strict_json

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    def __init__(self, output_dir: Path):
        self.path = output_dir / METRICS_FILE
        self.writes = jax.process_index() == 0

    def records(self) -> list[dict[str, Any]]:
        """Every complete record (a half-written last line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
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
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.write_text("".join(strict_json.dumps(strict_json.nulls_with_reasons(r)) + "\n" for r in kept), encoding="utf-8")
        os.replace(staging, self.path)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        if not self.writes:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(strict_json.dumps(strict_json.nulls_with_reasons(r)) + "\n" for r in records)
