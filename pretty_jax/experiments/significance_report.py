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


def with_interval(cell: str, pair: Mapping, key: str, metric: str, value: float | None) -> str:
    """`cell` (the score as printed) followed by "±h" and the marks of the baselines the
    system differs from; unchanged where the pair has no interval for it."""
    significance = pair.get("significance")
    interval = significance and significance["intervals"].get(key, {}).get(metric)
    if not interval or value is None:
        return cell
    marks = "".join(MARKS[baseline][0] for baseline, systems in significance["p_values"].items()
                    if systems.get(key, {}).get(metric, 1.0) < ALPHA)
    return f"{cell} ±{interval['half_width']:.{_decimals(value)}f}{marks}"


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
                cells.append("–" if p is None else f"{p:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
