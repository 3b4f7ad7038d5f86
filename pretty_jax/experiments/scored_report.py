"""What the report says about scored priors (prior_scoring.py): how many priors a gate
dropped, and the adaptive SFT prior's mean length, in the table's notes and as points
beside the Fig. 5 sweep (chrF++ against the mean number of SFT prior tokens)."""

from __future__ import annotations

from typing import Mapping


def scored_notes(pair: Mapping) -> list[str]:
    """One sentence per gated or adaptive system of a pair's results."""
    notes = []
    for system in pair["systems"].values():
        if "prior_dropped" in system:
            notes.append(f"{system['label']}: the gate dropped {system['prior_dropped']} of {pair['examples']} "
                         "priors (those examples decode with no prior).")
        if system.get("mean_prior_tokens") is not None:
            counts = ", ".join(f"k={k}: {n}" for k, n in system["prior_token_counts"].items())
            notes.append(f"{system['label']}: mean k = {system['mean_prior_tokens']:.2f} SFT prior tokens ({counts}).")
    return notes


def adaptive_points(pair: Mapping, metric: str) -> list[dict]:
    """The adaptive SFT priors of a pair as (mean k, metric) points:
    [{"key", "label", "mean_prior_tokens", "value"}]."""
    return [{"key": key, "label": system["label"], "mean_prior_tokens": system["mean_prior_tokens"],
             "value": system["metrics"][metric]}
            for key, system in pair["systems"].items() if system.get("mean_prior_tokens") is not None]


def adaptive_sweep_rows(pair: Mapping, metric: str) -> list[str]:
    """Rows for the report's sweep table: `| mean 1.40 (adaptive, KL < 0.5) | 55.20 |`."""
    rows = []
    for point in adaptive_points(pair, metric):
        rule = point["label"].rsplit(", ", 1)[-1].rstrip(")")
        value = f"{point['value']:.3f}" if abs(point["value"]) <= 1 else f"{point['value']:.2f}"
        rows.append(f"| mean {point['mean_prior_tokens']:.2f} (adaptive, {rule}) | {value} |")
    return rows
