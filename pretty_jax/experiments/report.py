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
from pretty_jax.experiments.language_report import language_cells, language_columns, language_notes
from pretty_jax.experiments.scored_report import (
    adaptive_points,
    adaptive_sweep_rows,
    scored_notes,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCHEMA = "pretty_jax/results/1"
COLUMNS = {
    "translation": [("bleu", "BLEU"), ("spbleu", "spBLEU"), ("chrf", "chrF++")],
    "summarization": [("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")],
    "pos": [("pos_accuracy", "accuracy")],
}
MAIN_METRIC = {"translation": "chrf", "summarization": "rougeL", "pos": "pos_accuracy"}
SWEEP_FIGURE = "prior_sweep.png"


def sweep_points(pair: Mapping, sweep: Sequence[int]) -> list[dict]:
    """The sweep's (k, metrics) points from a pair's systems."""
    points = []
    for k in sweep:
        key = f"sft-{k}tok" if k else "none"
        points.append({"prior_tokens": k, "metrics": pair["systems"][key]["metrics"]})
    return points


def build_results(task: str, foundation: str, sft: str | None, pairs: Mapping[str, dict], sweep: Sequence[int]) -> dict:
    results = {"schema": SCHEMA, "task": task, "foundation": foundation, "sft": sft, "pairs": dict(pairs)}
    if sweep:
        results["sweep"] = {name: sweep_points(pair, sweep) for name, pair in pairs.items()}
    return results


def _format(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if abs(value) <= 1 else f"{value:.2f}"


def _pair_table(task: str, pair: Mapping) -> list[str]:
    columns = [(m, name) for m, name in COLUMNS[task] if any(m in s["metrics"] for s in pair["systems"].values())]
    main = MAIN_METRIC[task]
    sft_main = pair["systems"].get("sft", {}).get("metrics", {}).get(main)
    languages = language_columns(pair)
    header = ["system"] + [name for _, name in columns] + [title for _, title in languages] + ["prior found"]
    if sft_main:
        header.append(f"% of SFT {dict(COLUMNS[task])[main]}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system in pair["systems"].values():
        metrics = system["metrics"]
        row = [system["label"]] + [_format(metrics.get(m)) for m, _ in columns]
        row += language_cells(pair, metrics, languages) + [_format(system["prior_found_rate"])]
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
    notes += scored_notes(pair) + language_notes(pair)
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
    lines = [f"# PreTTY results: {task}", "", f"- foundation: `{results['foundation']}`"]
    if results.get("sft"):
        lines.append(f"- SFT: `{results['sft']}`")
    for role, formatting in results.get("prompt_formats", {}).items():
        lines.append(f"- {'SFT' if role == 'sft' else 'refined'} model prompted: {chat.describe(formatting)}")
    for name, pair in results["pairs"].items():
        lines += ["", f"## {pair['source_lang']} → {pair['target_lang']} ({pair['examples']} examples)", ""]
        lines += _pair_table(task, pair)
        lines += _pair_notes(pair)
        signatures = _signatures(pair)
        if signatures:
            lines += ["", "Metric signatures:", *signatures]
        if name in results.get("sweep", {}):
            main = MAIN_METRIC[task]
            lines += ["", f"### {dict(COLUMNS[task])[main]} against the number of SFT prior tokens", "",
                      "| prior tokens | " + dict(COLUMNS[task])[main] + " |", "|---|---|"]
            lines += [f"| {p['prior_tokens']} | {_format(p['metrics'][main])} |" for p in results["sweep"][name]]
            lines += adaptive_sweep_rows(pair, main)
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


def plot_sweep(results: Mapping, path: Path) -> None:
    """Fig. 5: the main metric against the number of SFT prior tokens, per pair, with
    the SFT model as a dashed line and each adaptive SFT prior as a star at its mean k."""
    task = results["task"]
    main = MAIN_METRIC[task]
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for name, points in results["sweep"].items():
        line = axis.plot([p["prior_tokens"] for p in points], [p["metrics"][main] for p in points], marker="o", label=name)
        for point in adaptive_points(results["pairs"][name], main):  # the adaptive prior at its mean k
            axis.plot([point["mean_prior_tokens"]], [point["value"]], marker="*", markersize=12, linestyle="none",
                      color=line[0].get_color(), label=f"{name} adaptive ({point['key']})")
        sft = results["pairs"][name]["systems"].get("sft")
        if sft:
            axis.axhline(sft["metrics"][main], linestyle="--", color=line[0].get_color(), label=f"{name} SFT")
    axis.set_xlabel("SFT prior tokens")
    axis.set_ylabel(dict(COLUMNS[task])[main])
    axis.legend()
    save_figure(figure, path)


def write_results(run_dir: RunDirectory, results: Mapping) -> None:
    """results.json, report.md and (with a sweep) the sweep figure, each recorded in the
    run's manifest and written atomically."""
    run_dir.write_text("results.json", json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False))
    run_dir.write_text("report.md", report_markdown(results))
    if results.get("sweep"):
        run_dir.write_with(SWEEP_FIGURE, lambda path: plot_sweep(results, path))
