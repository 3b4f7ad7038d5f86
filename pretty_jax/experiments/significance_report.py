"""What report.md says of a pair's paired bootstrap (significance.py): "± half-width"
after each score with an interval, a mark where a system differs from a baseline at
p < 0.05, a note saying how they are computed and what they mean, and a table of the
p-values."""

from __future__ import annotations

from typing import Mapping, Sequence

ALPHA = 0.05
# The mark of a difference at p < ALPHA from each baseline, and the baseline's name.
MARKS = {"none": ("†", "the foundation with no prior"), "sft": ("‡", "the SFT model")}


def _decimals(value: float) -> int:
    return 3 if abs(value) <= 1 else 2


def half_width(pair: Mapping, key: str, metric: str) -> float | None:
    """The half-width of system `key`'s interval for `metric`, or None."""
    interval = (pair.get("significance") or {}).get("intervals", {}).get(key, {}).get(metric)
    return None if interval is None else interval["half_width"]


def difference_marks(pair: Mapping, key: str, metric: str) -> str:
    """The marks (MARKS) of the baselines system `key` differs from at p < ALPHA."""
    p_values = (pair.get("significance") or {}).get("p_values", {})
    return "".join(MARKS[baseline][0] for baseline, systems in p_values.items()
                   if systems.get(key, {}).get(metric, 1.0) < ALPHA)


def with_interval(cell: str, pair: Mapping, key: str, metric: str, value: float | None) -> str:
    """`cell` (the score as printed) followed by "±h" and the marks of the baselines the
    system differs from; unchanged where the pair has no interval for it."""
    width = half_width(pair, key, metric)
    if width is None or value is None:
        return cell
    return f"{cell} ±{width:.{_decimals(value)}f}{difference_marks(pair, key, metric)}"


def significance_notes(pair: Mapping) -> list[str]:
    """How the intervals and marks are computed and what they mean."""
    significance = pair.get("significance")
    if not significance:
        return []
    marks = "; ".join(f"{MARKS[b][0]}: differs from {MARKS[b][1]} at p < {ALPHA}" for b in significance["p_values"])
    return [f"±: half-width of the {significance['confidence']:.0%} confidence interval from paired bootstrap "
            f"resampling of the examples ({significance['resamples']} resamples, seed {significance['seed']}; "
            "sacrebleu's test for BLEU and chrF++, the same resampling for the other columns). "
            f"{marks}. A p-value is about how often chance alone gives a difference this large; "
            "it says the systems differ, not which is better."]


def _p_value(p: float, resamples: int) -> str:
    """A p-value to 3 decimals; the smallest the resamples can give, 1 / (resamples + 1), as "≤" it."""
    return f"≤{p:.3f}" if p <= 1 / (resamples + 1) + 1e-12 else f"{p:.3f}"


def p_value_table(pair: Mapping, columns: Sequence[tuple[str, str]]) -> list[str]:
    """| system | chrF++ p vs foundation | ... |: every system against each baseline, for
    the `columns` (metric, title) the pair has p-values of."""
    significance = pair.get("significance")
    if not significance:
        return []
    tested = {m for systems in significance["p_values"].values() for metrics in systems.values() for m in metrics}
    columns = [(m, title) for m, title in columns if m in tested]
    header = ["system"] + [f"{title} vs {'foundation' if b == 'none' else 'SFT'}"
                           for b in significance["p_values"] for _, title in columns]
    lines = ["", "### p-values (paired bootstrap)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, system in pair["systems"].items():
        cells = [system["label"]]
        for baseline, systems in significance["p_values"].items():
            for metric, _ in columns:
                p = systems.get(key, {}).get(metric)
                cells.append("–" if p is None else _p_value(p, significance["resamples"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
