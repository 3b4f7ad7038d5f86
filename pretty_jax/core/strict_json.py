"""JSON as pretty_jax writes it: strict. Python writes a non-finite float as `NaN` or
`Infinity`, which JSON does not have: `json.loads(..., strict)` in other languages,
`JSON.parse` in a browser and `jq` refuse the whole file. A value that cannot be
computed is written as null, and the writer says why beside it (a "reasons" field)."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping


def dumps(value: Any, **options) -> str:
    """`json.dumps(value, **options)` that raises ValueError on NaN or an infinity
    instead of writing invalid JSON (callers turn such values into null first, with
    `finite_or_none`)."""
    return json.dumps(value, allow_nan=False, **options)


def finite_or_none(values: Iterable[float]) -> list[float | None]:
    """`values` as floats, each non-finite one (NaN, an infinity) as None."""
    return [float(v) if math.isfinite(v) else None for v in map(float, values)]


def count_non_finite(values: Iterable[float]) -> int:
    """How many of `values` are NaN or infinite."""
    return sum(not math.isfinite(v) for v in map(float, values))


def nulls_with_reasons(record: Mapping[str, Any]) -> dict[str, Any]:
    """A flat record (a metrics line) with each non-finite float as None, and a
    "reasons" entry that says, per such key, what the value was: {"loss": None,
    "reasons": {"loss": "not finite (nan)"}}."""
    reasons = {key: f"not finite ({value})" for key, value in record.items()
               if isinstance(value, float) and not math.isfinite(value)}
    if not reasons:
        return dict(record)
    return {**{key: None if key in reasons else value for key, value in record.items()}, "reasons": reasons}
