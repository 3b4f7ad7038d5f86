"""Paired bootstrap resampling of every system of a pair against the foundation with no
prior ("none") and against the SFT model ("sft"): a 95% confidence interval per system
and metric, and a p-value per comparison.

BLEU and chrF++ go through sacrebleu's own test (`sacrebleu.significance.PairedTest`, what
`sacrebleu REF -i BASELINE SYSTEM ... --paired-bs` runs). ROUGE, POS accuracy and the
language rates, which sacrebleu does not know, go through `paired_bootstrap` here, which
draws the same resamples (numpy's `default_rng(seed).choice` of n examples, n at a time,
`resamples` times) and computes the interval and p-value as sacrebleu does:

- interval: mean ± half-width, where the mean is the system's score averaged over the
  resamples and the half-width half the distance between the 2.5th and 97.5th percentile
  of the resampled scores (sacrebleu's `estimate_ci`);
- p-value: the share of resamples whose |system − baseline| difference, centred on its
  mean over the resamples, exceeds the observed difference, (count + 1) / (resamples + 1):
  roughly how often a difference this large arises by chance if both systems came from
  the same process. A system whose outputs (or, for a rate, per-example values) equal the
  baseline's gets p = 1, where sacrebleu's formula would give 1 / (resamples + 1).

results.json, per pair:

    "significance": {"test": "paired bootstrap resampling", "resamples": 1000, "seed": 12345,
                     "confidence": 0.95,
                     "intervals": {"<system>": {"<metric>": {"mean": float, "half_width": float}}},
                     "p_values": {"none" | "sft": {"<system>": {"<metric>": float}}}}

Every system gets an interval (the same whatever it is compared with: the resamples are
the same); `p_values[baseline]` holds every other system. spBLEU is not tested.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Mapping, Sequence

import numpy as np
from sacrebleu.metrics import CHRF
from sacrebleu.significance import PairedTest, estimate_ci

from pretty_jax.tasks import Example
from pretty_jax.tasks.metrics import ROUGE_METRICS, bleu_metric, rouge_example_scores
from pretty_jax.tasks.pos import parse_tags
from pretty_jax.tasks.source_language import is_source_language
from pretty_jax.tasks.target_language import classify

RESAMPLES = 1000
SEED = 12345  # sacrebleu's default (SACREBLEU_SEED), so its command line gives the same numbers
BASELINES = ("none", "sft")
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """One system's bootstrap against a baseline: the interval of the system's score and
    the p-value of its difference from the baseline."""

    mean: float
    half_width: float
    p_value: float


def resample_indices(num_examples: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[resamples, num_examples] example indices drawn with replacement, as sacrebleu draws them."""
    return np.random.default_rng(seed).choice(num_examples, size=(resamples, num_examples), replace=True)


def paired_bootstrap(system_stats: np.ndarray, baseline_stats: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
                     resamples: int = RESAMPLES, seed: int = SEED) -> Bootstrap:
    """sacrebleu's paired bootstrap over per-example statistics.

    system_stats, baseline_stats: [n, d] additive statistics per example (e.g. [correct,
      words] for POS accuracy, [F1] for ROUGE, [in language] for a rate).
    score: summed statistics [R, d] -> scores [R] (and [1, d] -> [1] for the observed score).
    """
    system_stats, baseline_stats = np.asarray(system_stats, float), np.asarray(baseline_stats, float)
    if system_stats.shape != baseline_stats.shape or system_stats.ndim != 2 or not len(system_stats):
        raise ValueError(f"statistics of shapes {system_stats.shape} and {baseline_stats.shape}: want equal [n, d], n > 0")
    indices = resample_indices(len(system_stats), resamples, seed)
    system_scores = score(system_stats[indices].sum(axis=1))
    baseline_scores = score(baseline_stats[indices].sum(axis=1))
    observed = abs(score(system_stats.sum(axis=0, keepdims=True))[0] - score(baseline_stats.sum(axis=0, keepdims=True))[0])
    mean, half_width = estimate_ci(system_scores)
    differences = np.abs(system_scores - baseline_scores)
    p_value = (np.sum(differences - differences.mean() > observed) + 1) / (resamples + 1)
    if np.ptp(differences) == 0 and observed == 0:  # the same score everywhere: no difference at all
        p_value = 1.0
    return Bootstrap(float(mean), float(half_width), float(p_value))


def mean_score(sums: np.ndarray, num_examples: int) -> np.ndarray:
    """The mean of a per-example value: [R, 1] sums -> [R]."""
    return sums[:, 0] / num_examples


def ratio_score(sums: np.ndarray) -> np.ndarray:
    """A ratio of sums, e.g. correct tags / gold words: [R, 2] -> [R]."""
    return sums[:, 0] / np.maximum(sums[:, 1], 1)


# --- per-example statistics of each task's metrics -----------------------------------

StatisticsFn = Callable[[Sequence[str], Sequence[Example], str, str], dict[str, np.ndarray]]


def _language_statistics(predictions: Sequence[str], examples: Sequence[Example], source_lang: str,
                         target_lang: str) -> dict[str, np.ndarray]:
    return {
        "target_language_rate": np.array([[classify(p, target_lang) == "target"] for p in predictions], float),
        "source_language_rate": np.array([[is_source_language(p, e.source, source_lang)]
                                          for p, e in zip(predictions, examples)], float),
    }


def _rouge_statistics(predictions, examples, source_lang, target_lang) -> dict[str, np.ndarray]:
    per_example = rouge_example_scores(predictions, [e.reference for e in examples], target_lang)
    statistics = {name: np.array([[scores[name]] for scores in per_example]) for name in ROUGE_METRICS}
    return statistics | _language_statistics(predictions, examples, source_lang, target_lang)


def _pos_statistics(predictions, examples, source_lang, target_lang) -> dict[str, np.ndarray]:
    tags = [parse_tags(p) for p in predictions]
    correct = [[sum(p == g for p, g in zip(predicted, e.tags)), len(e.tags)] for predicted, e in zip(tags, examples)]
    return {"pos_accuracy": np.array(correct, float), "target_language_rate": np.array([[bool(t)] for t in tags], float)}


# Per task: the metrics sacrebleu tests, and the per-example statistics of the others.
SACREBLEU_METRICS = {"translation": ("bleu", "chrf")}
EXAMPLE_STATISTICS: dict[str, StatisticsFn] = {
    "translation": _language_statistics, "summarization": _rouge_statistics, "pos": _pos_statistics,
}
RATIO_METRICS = {"pos_accuracy"}


def _score_of(metric: str, num_examples: int) -> Callable[[np.ndarray], np.ndarray]:
    return ratio_score if metric in RATIO_METRICS else (lambda sums: mean_score(sums, num_examples))


# --- sacrebleu ----------------------------------------------------------------------


@contextlib.contextmanager
def _sacrebleu_seed(seed: int):
    """sacrebleu reads its seed from SACREBLEU_SEED; set it for the test, then restore it."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def sacrebleu_paired(baseline: Sequence[str], systems: Mapping[str, Sequence[str]], references: Sequence[str],
                     target_lang: str, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, dict[str, Bootstrap]]:
    """sacrebleu's paired bootstrap of BLEU (the target language's tokenizer) and chrF++:
    {"baseline" | system name: {"bleu" | "chrf": Bootstrap}} (the baseline's p-value is 1)."""
    if seed == 0:
        raise ValueError("seed=0: sacrebleu treats 0 as 'no seed'; give another")
    metrics = {"bleu": bleu_metric(target_lang), "chrf": CHRF(word_order=2)}
    named = [("baseline", list(baseline))] + [(name, list(hyps)) for name, hyps in systems.items()]
    with _sacrebleu_seed(seed):
        _, columns = PairedTest(named, metrics, [list(references)], test_type="bs", n_samples=resamples)()
    results: dict[str, dict[str, Bootstrap]] = {name: {} for name, _ in named}
    for (ours, _), column in zip(metrics.items(), [c for k, c in columns.items() if k != "System"]):
        for (name, _), result in zip(named, column):
            p_value = 1.0 if result.p_value is None else float(result.p_value)
            results[name][ours] = Bootstrap(float(result.mean), float(result.ci), p_value)
    return results


# --- a pair's systems -------------------------------------------------------------------


def pair_significance(task: str, source_lang: str, target_lang: str, predictions: Mapping[str, Sequence[str]],
                      examples: Sequence[Example], resamples: int = RESAMPLES, seed: int = SEED) -> dict | None:
    """results.json's "significance" entry of a pair (module docstring); None for a task
    this module does not know or a pair with neither baseline.

    predictions: system key -> postprocessed predictions aligned with `examples`.
    """
    baselines = [b for b in BASELINES if b in predictions]
    if task not in EXAMPLE_STATISTICS or not baselines:
        return None
    n = len(examples)
    statistics = {key: EXAMPLE_STATISTICS[task](hyps, examples, source_lang, target_lang)
                  for key, hyps in predictions.items()}
    references = [e.reference for e in examples]
    intervals: dict[str, dict] = {key: {} for key in predictions}
    p_values: dict[str, dict] = {}
    for baseline in baselines:
        others = {key: hyps for key, hyps in predictions.items() if key != baseline}
        p_values[baseline] = {key: {} for key in others}
        results: dict[str, dict[str, Bootstrap]] = {key: {} for key in predictions}
        if task in SACREBLEU_METRICS:
            tested = sacrebleu_paired(predictions[baseline], others, references, target_lang, resamples, seed)
            results[baseline] |= tested.pop("baseline")
            for key in others:
                results[key] |= tested[key]
        for metric, baseline_stats in statistics[baseline].items():
            score = _score_of(metric, n)
            for key in predictions:
                results[key][metric] = paired_bootstrap(statistics[key][metric], baseline_stats, score, resamples, seed)
        for key, by_metric in results.items():
            identical = list(predictions[key]) == list(predictions[baseline])
            for metric, result in by_metric.items():
                intervals[key][metric] = {"mean": result.mean, "half_width": result.half_width}
                if key != baseline:
                    p_values[baseline][key][metric] = 1.0 if identical else result.p_value
    return {"test": "paired bootstrap resampling", "resamples": resamples, "seed": seed, "confidence": CONFIDENCE,
            "intervals": intervals, "p_values": p_values}
