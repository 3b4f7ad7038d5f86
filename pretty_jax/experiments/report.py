"""An experiment's results: `results.json`, `report.md` and the prior-token sweep figure.

results.json:

    {"schema": "pretty_jax/results/1", "task": str, "foundation": str, "sft": str | null,
     "pairs": {"<src>-<tgt>": {
         "task", "source_lang", "target_lang", "examples": n, "truncated_documents": n,
         "empty_references": n, "refined_missing": n,         # the latter with a refined file
         "systems": {"<key>": {"label": str, "prior": {"kind", "count", "unit"} | null,
                              "metrics": {metric: value, "<metric>_signature": str,
                                          "target_language_rate", "close_relative_rate",
                                          "source_language_rate": float,   # translation, summarisation
                                          "target_language_reliable": bool | null,  # null: uncalibrated
                                          "target_language_reference_rate": float | null},
                              "prior_found_rate": float | null,
                              "prior_dropped": n,                 # gated priors (--prior_min_logprob)
                              "mean_prior_tokens": float, "prior_token_counts": {k: n}}},  # --adaptive_kl
         "significance": {...},       # paired bootstrap intervals and p-values (significance.py)
         "example_outputs": [{"id", "source", "reference", "outputs": {"<key>": str}}],  # the first 3
         "alignment": {"<k>": alignment SUMMARY}        # with --align (alignment_report.py)
     }},
     "sweep": {"<src>-<tgt>": [{"prior_tokens": k, "metrics": {...}}]},   # with --sweep_prior_tokens
     "prompt_formats": {"sft" | "refined": {"format": "plain" | "chat", "prompt_template",
                        "system_message", "chat_template_file", ...}}}   # experiments/chat.py

`<key>` is "none" (the plain foundation), "<kind>-<k>tok|word" for the foundation with
a prior, "sft" for the SFT model, and the alternative systems' keys ("contrastive-
language0.5", "proxy-first3", ...; experiments/alternatives.py), whose entries add
"system": {"kind": "contrastive", "prior", "contrasts", "lambdas"} | {"kind": "proxy",
"first_k"}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

from pretty_jax.alignment.plots import save_figure
from pretty_jax.alignment.shift import SHIFT_CLASSES
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.experiments import chat
from pretty_jax.experiments.language_report import COLUMNS as LANGUAGE_COLUMNS
from pretty_jax.experiments.language_report import language_cells, language_columns, language_notes
from pretty_jax.experiments.scored_report import (
    adaptive_points,
    adaptive_sweep_rows,
    scored_notes,
)
from pretty_jax.experiments.significance_report import half_width, p_value_table, significance_notes, with_interval
from pretty_jax.tasks.registry import get_task

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SCHEMA = "pretty_jax/results/1"
SWEEP_FIGURE = "prior_sweep.png"
EXAMPLES_SHOWN = 3  # examples with every system's output in report.md


def sweep_points(pair: Mapping, sweep: Sequence[int]) -> list[dict]:
    """The sweep's (k, metrics) points from a pair's systems."""
    points = []
    for k in sweep:
        key = f"sft-{k}tok" if k else "none"
        points.append({"prior_tokens": k, "metrics": pair["systems"][key]["metrics"]})
    return points


def example_outputs(examples: Sequence, predictions: Mapping[str, Sequence[str]], count: int = EXAMPLES_SHOWN) -> list[dict]:
    """The first `count` examples with every system's output, for the report's examples
    section: [{"id", "source", "reference", "outputs": {system key: prediction}}]."""
    return [{"id": e.id, "source": e.source, "reference": e.reference,
             "outputs": {key: hyps[i] for key, hyps in predictions.items()}} for i, e in enumerate(examples[:count])]


def _one_line(text: str, limit: int = 300) -> str:
    """`text` on one line of markdown, cut to `limit` characters."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|") or "(empty)"


def _examples_section(pair: Mapping) -> list[str]:
    """Each shown example's source, reference and every system's output, side by side."""
    if not pair.get("example_outputs"):
        return []
    lines = ["", "### Examples", ""]
    for shown in pair["example_outputs"]:
        lines += [f"**{shown['id']}**", "", "| | text |", "|---|---|", f"| source | {_one_line(shown['source'])} |",
                  f"| reference | {_one_line(shown['reference'])} |"]
        for key, output in shown["outputs"].items():
            label = pair["systems"][key]["label"] if key in pair["systems"] else key
            lines.append(f"| {label} | {_one_line(output)} |")
        lines.append("")
    return lines[:-1]


def build_results(task: str, foundation: str, sft: str | None, pairs: Mapping[str, dict], sweep: Sequence[int]) -> dict:
    results = {"schema": SCHEMA, "task": task, "foundation": foundation, "sft": sft, "pairs": dict(pairs)}
    if sweep:
        results["sweep"] = {name: sweep_points(pair, sweep) for name, pair in pairs.items()}
    return results


def _format(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if abs(value) <= 1 else f"{value:.2f}"


def has_prior(system: Mapping) -> bool:
    """Whether a system decodes after a prior (the plain foundation and the SFT model do not)."""
    prior = system.get("prior")
    return bool(prior) and prior.get("kind") != "none" and prior.get("count", 0) > 0


def _pair_table(task: str, pair: Mapping) -> list[str]:
    kind = get_task(task)
    columns = [(m, name) for m, name in kind.columns if any(m in s["metrics"] for s in pair["systems"].values())]
    main = kind.main_metric
    sft_main = pair["systems"].get("sft", {}).get("metrics", {}).get(main)
    languages = language_columns(pair)
    prior_column = any(has_prior(s) for s in pair["systems"].values())
    header = ["system"] + [name for _, name in columns] + [title for _, title in languages]
    header += ["prior found"] if prior_column else []
    if sft_main:
        header.append(f"% of SFT {kind.column_title(main)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, system in pair["systems"].items():
        metrics = system["metrics"]
        row = [system["label"]] + [with_interval(_format(metrics.get(m)), pair, key, m, metrics.get(m)) for m, _ in columns]
        cells = language_cells(pair, metrics, languages)
        row += [cell if cell.startswith("not reliable") else with_interval(cell, pair, key, m, metrics.get(m))
                for (m, _), cell in zip(languages, cells)]
        if prior_column:
            row.append(_format(system["prior_found_rate"]) if has_prior(system) else "–")
        if sft_main:
            row.append(f"{100 * metrics[main] / sft_main:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _pair_notes(pair: Mapping) -> list[str]:
    """What a reader must know to trust the pair's numbers."""
    notes = []
    if pair.get("truncated_documents"):
        notes.append(f"{pair['truncated_documents']} documents were truncated to fit the context.")
    if pair.get("empty_references"):
        notes.append(f"Warning: {pair['empty_references']} of {pair['examples']} references are empty "
                     "(scored as given).")
    if pair.get("refined_missing"):
        notes.append(f"Warning: the refined file lacks {pair['refined_missing']} of {pair['examples']} examples; "
                     "they decode with no refined prior.")
    notes += scored_notes(pair) + language_notes(pair) + significance_notes(pair)
    return [""] + notes if notes else []


def _signatures(pair: Mapping) -> list[str]:
    signatures = {}
    for system in pair["systems"].values():
        for key, value in system["metrics"].items():
            if key.endswith("_signature"):
                signatures[key.removesuffix("_signature")] = value
    return [f"- {name}: `{value}`" for name, value in sorted(signatures.items())]


def report_markdown(results: Mapping) -> str:
    task = results["task"]
    kind = get_task(task)
    lines = [f"# PreTTY results: {task}", "", f"- foundation: `{results['foundation']}`"]
    if results.get("sft"):
        lines.append(f"- SFT: `{results['sft']}`")
    for role, formatting in results.get("prompt_formats", {}).items():
        lines.append(f"- {'SFT' if role == 'sft' else 'refined'} model prompted: {chat.describe(formatting)}")
    for name, pair in results["pairs"].items():
        lines += ["", f"## {pair['source_lang']} → {pair['target_lang']} ({pair['examples']} examples)", ""]
        lines += _pair_table(task, pair)
        lines += _pair_notes(pair)
        lines += p_value_table(pair, list(kind.columns) + list(LANGUAGE_COLUMNS))
        signatures = _signatures(pair)
        if signatures:
            lines += ["", "Metric signatures:", *signatures]
        if name in results.get("sweep", {}):
            main, title = kind.main_metric, kind.column_title(kind.main_metric)
            lines += ["", f"### {title} against the number of SFT prior tokens", "",
                      "| prior tokens | " + title + " |", "|---|---|"]
            lines += [f"| {p['prior_tokens']} | {_format(p['metrics'][main])} |" for p in results["sweep"][name]]
            lines += adaptive_sweep_rows(pair, main)
        lines += _examples_section(pair)
        if pair.get("alignment"):
            lines += ["", "### Alignment with the SFT model (along the foundation's own continuation)", "",
                      "| prior tokens | top-1 agreement | top-5 agreement | KL(SFT‖LM) | JS "
                      "| unshifted | marginal | shifted |", "|---|---|---|---|---|---|---|---|"]
            for k, summary in pair["alignment"].items():
                agreement, shift = summary["topk_agreement"], summary.get("token_shift", {})
                lines.append(f"| {k} | {_format(agreement.get('1'))} | {_format(agreement.get('5'))} | "
                             f"{_format(summary['kl_sft_lm'])} | {_format(summary['js'])} | "
                             + " | ".join(_format(shift.get(c)) for c in SHIFT_CLASSES) + " |")
            lines += ["", "Token shift: the SFT model's token is the foundation's top-1 (unshifted), its 2nd-3rd "
                      f"choice (marginal) or lower (shifted); by step in `{name}/token_shift_by_step.png`, "
                      f"token by token in `{name}/alignment.html`."]
    return "\n".join(lines) + "\n"


def _pair_title(pair: Mapping) -> str:
    return f"{pair['source_lang']} → {pair['target_lang']}"


def plot_sweep(results: Mapping, path: Path) -> None:
    """Fig. 5: the main metric against the number of SFT prior tokens, per pair, with
    95% intervals as error bars (where the pair has them), the SFT model as a dashed line
    and each adaptive SFT prior as a star at its mean k."""
    task = results["task"]
    kind = get_task(task)
    main, title = kind.main_metric, kind.column_title(kind.main_metric)
    figure, axis = plt.subplots(figsize=(7, 4.8))
    for name, points in results["sweep"].items():
        pair = results["pairs"][name]
        widths = [half_width(pair, f"sft-{p['prior_tokens']}tok" if p["prior_tokens"] else "none", main) for p in points]
        line = axis.plot([p["prior_tokens"] for p in points], [p["metrics"][main] for p in points], marker="o",
                         label=f"{_pair_title(pair)}: foundation + k SFT prior tokens")
        if all(w is not None for w in widths):
            axis.errorbar([p["prior_tokens"] for p in points], [p["metrics"][main] for p in points], yerr=widths,
                          fmt="none", capsize=4, color=line[0].get_color(),
                          label=None if name != next(iter(results["sweep"])) else "95% interval (paired bootstrap)")
        for point in adaptive_points(pair, main):  # the adaptive prior at its mean k
            rule = point["label"].rsplit(", ", 1)[-1].rstrip(")")
            axis.plot([point["mean_prior_tokens"]], [point["value"]], marker="*", markersize=12, linestyle="none",
                      color=line[0].get_color(),
                      label=f"{_pair_title(pair)}: adaptive SFT prior ({rule}), at its mean k")
        sft = pair["systems"].get("sft")
        if sft:
            axis.axhline(sft["metrics"][main], linestyle="--", color=line[0].get_color(),
                         label=f"{_pair_title(pair)}: SFT model")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("SFT prior tokens k")
    axis.set_ylabel(title)
    axis.set_title(f"{title} against the number of SFT prior tokens")
    handles = axis.get_legend_handles_labels()[0]  # below the plot: inside, it would hide the SFT line
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    rows = (len(handles) + 1) // 2
    save_figure(figure, path, rect=(0, 0.045 * rows + 0.01, 1, 1))


def write_results(run_dir: RunDirectory, results: Mapping) -> None:
    """results.json, report.md and (with a sweep) the sweep figure, each recorded in the
    run's manifest and written atomically."""
    run_dir.write_text("results.json", json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False))
    run_dir.write_text("report.md", report_markdown(results))
    if results.get("sweep"):
        run_dir.write_with(SWEEP_FIGURE, lambda path: plot_sweep(results, path))
