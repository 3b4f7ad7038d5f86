"""Aggregating alignment statistics into `alignment.json` (schema below) and choosing
the (prefix, trajectory) pairs they are computed on.

alignment.json:

    {
      "schema": "pretty_jax/alignment/1",
      "foundation": str, "sft": str, "trajectory": "foundation" | "sft" | "reference",
      "top_k": [1, 3, 5, 10, 20, 50],
      "by_prior_tokens": {                      # keys are k as strings: "0", "1", ...
        "<k>": {
          "overall":  SUMMARY over every step of every example,
          "per_step": [SUMMARY with "step": t for t = 1, 2, ...],
          "examples": [{"id": str, "prior": [int], "trajectory": [int],
                        "steps": {STATISTIC: [value per step]}}]
        }
      }
    }

    SUMMARY = {"steps": n, "examples": m,
               "topk_agreement": {"<K>": share of steps whose SFT argmax is in the LM top-K},
               "token_shift": {"unshifted" | "marginal" | "shifted": share of steps},
               "p_lm_own" | "p_sft_own" | "p_lm_of_sft" | "kl_sft_lm" | "kl_lm_sft" | "js" | "tv": mean,
               "reasons": {name: why it is null}}    # only when some statistic is null

A statistic that cannot be computed (no steps; a step that is NaN or infinite) is null,
never NaN: the file is strict JSON. A step's value in "examples" that is not finite is
null too, and the summaries over it say so in "reasons".

In memory the report may also hold, under EXPLORER_DATA, the explorer page's data
(`alignment.explorer`: the top tokens of every step); alignment.json leaves it out.

STATISTIC names and meanings are those of `alignment.STATISTICS`; the token-shift
classes (by the foundation's rank of the SFT token) those of `alignment.shift`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pretty_jax.alignment.shift import shift_shares
from pretty_jax.alignment.statistics import STATISTICS
from pretty_jax.core import strict_json
from pretty_jax.core.errors import UserError, check_choice
from pretty_jax.core.strict_json import finite_or_none

SCHEMA = "pretty_jax/alignment/1"
REPORT_FILE = "alignment.json"
EXPLORER_DATA = "explorer_page_data"
TRAJECTORIES = ("foundation", "sft", "reference")
MEAN_STATISTICS = tuple(s for s in STATISTICS if s != "sft_rank_in_lm")
# Why a SUMMARY's statistic is null when no step was scored.
NO_STEPS = "no steps"


def alignment_pairs(
    kind: str,
    num_prior_tokens: int,
    prompts: Sequence[Sequence[int]],
    sft_outputs: Sequence[Sequence[int]],
    foundation_continuations: Sequence[Sequence[int]] | None = None,
    references: Sequence[Sequence[int]] | None = None,
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """(priors, prefixes, trajectories) for k = num_prior_tokens prior tokens.

    foundation: prior = first k SFT tokens, trajectory = the foundation's own
      continuation after that prior (`foundation_continuations`, generated with it);
    sft: prior = first k SFT tokens, trajectory = the rest of the SFT output;
    reference: prior = first k reference tokens, trajectory = the rest of the reference.
    """
    k = num_prior_tokens
    if kind == "foundation":
        if foundation_continuations is None:
            raise ValueError("the foundation trajectory needs the foundation's continuations")
        priors = [list(s[:k]) for s in sft_outputs]
        trajectories = [list(c) for c in foundation_continuations]
    elif kind == "sft":
        priors = [list(s[:k]) for s in sft_outputs]
        trajectories = [list(s[k:]) for s in sft_outputs]
    elif kind == "reference":
        if references is None:
            raise UserError("--trajectory=reference needs references (a 'reference' field per example)")
        priors = [list(r[:k]) for r in references]
        trajectories = [list(r[k:]) for r in references]
    else:
        check_choice("--trajectory", kind, TRAJECTORIES)
    prefixes = [list(p) + prior for p, prior in zip(prompts, priors)]
    return priors, prefixes, trajectories


def _mean(values: np.ndarray) -> tuple[float | None, str | None]:
    """(mean, None), or (None, why there is none): no steps, or steps that are not
    finite (a mean over them would be NaN, which JSON cannot hold)."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return None, NO_STEPS
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        return None, f"{bad} of {values.size} steps are not finite (NaN or infinite)"
    return float(np.mean(values)), None


def summarize(steps: Mapping[str, np.ndarray], num_examples: int, top_k: Sequence[int]) -> dict:
    """SUMMARY of pooled per-step values (see the module docstring)."""
    count = int(len(steps["sft_rank_in_lm"]))
    ranks = np.asarray(steps["sft_rank_in_lm"])
    summary = {
        "steps": count,
        "examples": num_examples,
        "topk_agreement": {str(k): float(np.mean(ranks < k)) if count else None for k in top_k},
        "token_shift": shift_shares(ranks),
    }
    reasons = {} if count else {"topk_agreement": NO_STEPS, "token_shift": NO_STEPS}
    for name in MEAN_STATISTICS:
        summary[name], reason = _mean(steps[name])
        if reason:
            reasons[name] = reason
    if reasons:
        summary["reasons"] = reasons
    return summary


def aggregate(per_example: Sequence[Mapping[str, np.ndarray]], top_k: Sequence[int]) -> tuple[dict, list[dict]]:
    """(overall SUMMARY, per-step SUMMARYs) over examples of ragged length."""
    pooled = {
        name: np.concatenate([np.asarray(e[name]) for e in per_example]) if per_example else np.zeros(0)
        for name in STATISTICS
    }
    overall = summarize(pooled, sum(len(e["sft_rank_in_lm"]) > 0 for e in per_example), top_k)
    longest = max((len(e["sft_rank_in_lm"]) for e in per_example), default=0)
    per_step = []
    for t in range(longest):
        having = [e for e in per_example if len(e["sft_rank_in_lm"]) > t]
        values = {name: np.array([e[name][t] for e in having]) for name in STATISTICS}
        per_step.append({"step": t + 1, **summarize(values, len(having), top_k)})
    return overall, per_step


def prior_report(
    ids: Sequence[str],
    priors: Sequence[Sequence[int]],
    trajectories: Sequence[Sequence[int]],
    per_example: Sequence[Mapping[str, np.ndarray]],
    top_k: Sequence[int],
) -> dict:
    """The "<k>" entry of alignment.json."""
    overall, per_step = aggregate(per_example, top_k)
    examples = [
        {
            "id": example_id,
            "prior": [int(t) for t in prior],
            "trajectory": [int(t) for t in trajectory],
            "steps": {name: finite_or_none(np.ravel(stats[name])) if name in MEAN_STATISTICS
                      else np.asarray(stats[name]).tolist() for name in STATISTICS},
        }
        for example_id, prior, trajectory, stats in zip(ids, priors, trajectories, per_example)
    ]
    return {"overall": overall, "per_step": per_step, "examples": examples}


def build_report(
    foundation: str, sft: str, trajectory: str, top_k: Sequence[int], by_prior: Mapping[int, dict]
) -> dict:
    """The whole alignment.json document; `by_prior` maps k to its `prior_report`."""
    return {
        "schema": SCHEMA,
        "foundation": foundation,
        "sft": sft,
        "trajectory": trajectory,
        "top_k": list(top_k),
        "by_prior_tokens": {str(k): by_prior[k] for k in sorted(by_prior)},
    }


def report_json(report: dict) -> str:
    """alignment.json's text (without the explorer page's data)."""
    return strict_json.dumps({key: value for key, value in report.items() if key != EXPLORER_DATA}, indent=1)


def read_report(path: Path) -> dict:
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if report.get("schema") != SCHEMA:
        raise UserError(f"{path}: schema {report.get('schema')!r}, expected {SCHEMA!r}")
    return report
