"""Paired bootstrap intervals and p-values: sacrebleu's command line gives the same
numbers on the same files, the numpy resampling is sacrebleu's, rates get sound
intervals, and a pair's entry is strict JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from pretty_jax.experiments.significance import (
    RESAMPLES,
    SEED,
    pair_significance,
    paired_bootstrap,
    ratio_score,
    sacrebleu_paired,
)
from pretty_jax.tasks import Example

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flores101_devtest"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real Flores-101 devtest) is absent")
N = 60


def _lines(code: str) -> list[str]:
    return (DATA / f"{code}.devtest").read_text(encoding="utf-8").splitlines()[:N]


def _drop_every(lines: list[str], nth: int) -> list[str]:
    """Each line without every nth word: a system close to the reference."""
    return [" ".join(w for i, w in enumerate(line.split(), 1) if i % nth) for line in lines]


def _cli_table(tmp_path: Path, references: list[str], systems: dict[str, list[str]]) -> dict[str, list[float]]:
    """`sacrebleu REF -i BASELINE SYS... -m bleu chrf --chrf-word-order 2 --paired-bs`:
    per system [bleu score, mean, half-width, (p), chrf score, mean, half-width, (p)]."""
    paths = []
    for name, lines in {"ref": references, **systems}.items():
        path = tmp_path / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(str(path))
    command = [sys.executable, "-m", "sacrebleu", paths[0], "-i", *paths[1:], "-m", "bleu", "chrf",
               "--chrf-word-order", "2", "--paired-bs", "-f", "text", "--width", "4"]
    table = subprocess.run(command, capture_output=True, text=True, check=True,
                           env={"SACREBLEU_SEED": str(SEED), "PATH": ""}).stdout
    numbers: dict[str, list[float]] = {}
    current = None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")] if line.startswith("│") else []
        if len(cells) != 3 or cells[0] == "System":
            continue
        if cells[0]:
            current = Path(cells[0].removeprefix("Baseline: ")).stem
            numbers[current] = []
        numbers[current] += [float(x) for c in cells[1:] for x in re.findall(r"[\d.]+", c)]
    return numbers


@needs_data
def test_paired_bootstrap_equals_sacrebleu_command_line(tmp_path):
    references, english = _lines("deu"), _lines("eng")
    baseline = _drop_every(references, 4)
    systems = {"close": _drop_every(references, 5), "nearly_same": references[:2] + baseline[2:], "english": english}
    ours = sacrebleu_paired(baseline, systems, references, "deu")
    cli = _cli_table(tmp_path, references, {"baseline": baseline, **systems})
    for name in ["baseline", *systems]:
        # Per system the command line prints "score (mean ± half-width)" per metric, then
        # a row of "(p = ...)" per metric (not for the baseline), to 4 decimals.
        row = cli[name]
        for m, metric in enumerate(("bleu", "chrf")):
            printed = row[3 * m + 1 : 3 * m + 3] + ([] if name == "baseline" else [row[6 + m]])
            expected = [ours[name][metric].mean, ours[name][metric].half_width]
            if name != "baseline":
                expected.append(ours[name][metric].p_value)
            assert printed == pytest.approx(expected, abs=6e-5), (name, metric, row)
    # Two sentences of 60 changed: a difference chance explains; English is off-target.
    assert ours["nearly_same"]["chrf"].p_value > 0.05
    assert ours["english"]["chrf"].p_value < 0.01


@needs_data
def test_numpy_resampling_is_sacrebleus_on_bleu_statistics():
    references = _lines("fra")
    system, baseline = _drop_every(references, 3), _drop_every(references, 7)
    bleu = BLEU()
    stats = [np.array(bleu._extract_corpus_statistics(h, [references]), float) for h in (system, baseline)]

    def score(sums):
        return np.array([bleu._compute_score_from_stats(list(s)).score for s in sums])

    ours = paired_bootstrap(stats[0], stats[1], score)
    _, columns = PairedTest([("b", baseline), ("s", system)], {"bleu": BLEU()}, [references], "bs", RESAMPLES)()
    theirs = columns["BLEU"][1]
    assert (ours.mean, ours.half_width, ours.p_value) == pytest.approx((theirs.mean, theirs.ci, theirs.p_value))


def test_rate_interval_is_the_binomial_one_and_fixed_by_the_seed():
    rng = np.random.default_rng(0)
    system = (rng.random((400, 1)) < 0.5).astype(float)
    baseline = np.zeros((400, 1))
    mean = lambda sums: sums[:, 0] / 400  # noqa: E731
    result = paired_bootstrap(system, baseline, mean)
    assert result.mean == pytest.approx(system.mean(), abs=0.01)
    assert result.half_width == pytest.approx(1.96 * np.sqrt(0.25 / 400), rel=0.15)
    assert result.p_value == pytest.approx(1 / (RESAMPLES + 1))
    assert paired_bootstrap(system, baseline, mean) == result
    same = paired_bootstrap(system, system, mean)
    assert same.p_value > 0.4  # no difference: nothing significant


def test_ratio_score_is_pooled_accuracy():
    # Resamples of two sentences (3 of 4 tags right, 0 of 6): 6/8, 0/12 or 3/10 pooled, so
    # the bootstrap mean is 0.25 * 0.75 + 0.5 * 0.3 = 0.3375 (a mean of per-sentence
    # accuracies would give 0.375).
    stats = np.array([[3.0, 4.0], [0.0, 6.0]])
    assert paired_bootstrap(stats, stats, ratio_score, resamples=4000).mean == pytest.approx(0.3375, abs=0.01)


@needs_data
def test_pair_entry_compares_every_system_with_both_baselines():
    sources, references = _lines("eng"), _lines("deu")
    examples = [Example(f"devtest-{i}", s, r) for i, (s, r) in enumerate(zip(sources, references))]
    predictions = {"none": sources, "sft-1tok": _drop_every(references, 3), "same": list(sources),
                   "sft": _drop_every(references, 4)}
    entry = pair_significance("translation", "eng", "deu", predictions, examples)
    assert (entry["resamples"], entry["seed"], entry["confidence"]) == (RESAMPLES, SEED, 0.95)
    assert set(entry["p_values"]) == {"none", "sft"}
    assert set(entry["p_values"]["none"]) == {"sft-1tok", "same", "sft"}
    assert set(entry["p_values"]["sft"]) == {"none", "sft-1tok", "same"}
    for metric in ("bleu", "chrf", "target_language_rate", "source_language_rate"):
        assert set(entry["intervals"]["none"][metric]) == {"mean", "half_width"}
        assert entry["p_values"]["none"]["same"][metric] == 1.0
    assert entry["p_values"]["none"]["sft-1tok"]["target_language_rate"] < 0.01
    assert entry["intervals"]["none"]["source_language_rate"]["mean"] > 0.9
    assert entry["intervals"]["sft"]["target_language_rate"]["mean"] > 0.9
    # The same system gets the same interval against either baseline, and a rerun the same bytes.
    again = pair_significance("translation", "eng", "deu", predictions, examples)
    assert json.dumps(again, allow_nan=False) == json.dumps(entry, allow_nan=False)


def test_pos_and_summarisation_entries():
    examples = [Example(str(i), "a b c", "N V N", words=("a", "b", "c"), tags=("NOUN", "VERB", "NOUN")) for i in range(20)]
    entry = pair_significance("pos", "eng", "eng", {"none": ["NOUN NOUN NOUN"] * 20, "sft": ["NOUN VERB NOUN"] * 20},
                              examples)
    assert entry["intervals"]["none"]["pos_accuracy"]["mean"] == pytest.approx(2 / 3)
    assert entry["p_values"]["none"]["sft"]["pos_accuracy"] == pytest.approx(1 / (RESAMPLES + 1))
    summaries = [Example(str(i), "doc", "the cat sat on the mat") for i in range(10)]
    entry = pair_significance("summarization", "eng", "eng",
                              {"none": ["a dog"] * 10, "sft": ["the cat sat"] * 10}, summaries)
    assert entry["intervals"]["sft"]["rougeL"]["mean"] == pytest.approx(100 * 2 * 0.5 / 1.5)
    assert pair_significance("translation", "eng", "deu", {"sft-1tok": ["x"]}, summaries[:1]) is None
