"""The report's language columns: the target-language rate, or "not reliable for X
(reference rate r)" where the calibration table says the measure cannot be trusted for
the target language; the close-relative rate; the source-language rate."""

from __future__ import annotations

from typing import Mapping

from pretty_jax.tasks.languages import get_language

# (metric, column title), in table order after the task's own metrics.
COLUMNS = (("target_language_rate", "target language"), ("close_relative_rate", "close relative"),
           ("source_language_rate", "source language"))  # fmt: skip


def language_columns(pair: Mapping) -> list[tuple[str, str]]:
    """The language columns a pair's systems have (always the target language)."""
    systems = pair["systems"].values()
    return [(m, title) for m, title in COLUMNS if m == "target_language_rate" or any(m in s["metrics"] for s in systems)]


def language_cells(pair: Mapping, metrics: Mapping, columns: list[tuple[str, str]]) -> list[str]:
    """One system's cells of `columns`: rates to 3 decimals, "–" where absent."""
    cells = []
    for metric, _ in columns:
        value = metrics.get(metric)
        if metric == "target_language_rate" and value is not None and metrics.get("target_language_reliable") is False:
            name = get_language(pair["target_lang"]).name
            cells.append(f"not reliable for {name} (reference rate {metrics['target_language_reference_rate']:.3f})")
        else:
            cells.append("–" if value is None else f"{value:.3f}")
    return cells


def language_notes(pair: Mapping) -> list[str]:
    """What a reader must know about the language columns of a pair."""
    metrics = next(iter(pair["systems"].values()))["metrics"]
    notes = []
    if metrics.get("target_language_reliable") is False:
        name = get_language(pair["target_lang"]).name
        notes.append(f"The target-language measure is not reliable for {name}: only "
                     f"{metrics['target_language_reference_rate']:.3f} of Flores-101 references are recognised "
                     "(see the README's Languages section); its rates are in results.json.")
    elif "target_language_reliable" in metrics and metrics["target_language_reliable"] is None:
        notes.append(f"The target-language measure is not calibrated for {pair['target_lang']} "
                     "(not a Flores-101 language): its rate is unchecked.")
    if "source_language_rate" in metrics:
        notes.append("Source language: the share of outputs in the source language or copying the source.")
    return notes
