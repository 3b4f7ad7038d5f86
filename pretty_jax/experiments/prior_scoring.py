"""Priors the models judge before the foundation decodes with them.

A scored system (`PriorSpec.scored`) first runs its own resumable stage,
`OUT/<pair>/<key>.scores.jsonl`, one record per example, then decodes with the priors
that stage chose (`<key>.jsonl`, like every other system). The rules:

- choice "foundation" (dictionary priors): every listed translation of the first
  source word is a candidate; the foundation scores each after the prompt, tokenised as
  the answer continues the prompt, and the candidate with the highest mean log-prob
  per token (the length-normalised log-prob; ties go to the one listed first) is the
  prior. With k > 1 words the choice is made word by word: each next word's candidates
  extend the words already chosen, and the whole candidate text is scored.
- gating (`min_logprob`): the prior's mean log-prob per token under the foundation
  after the prompt; below the threshold it is dropped and the example decodes with no
  prior. Examples without a prior (a dictionary lacking every word) are not counted
  as dropped.
- adaptive SFT prior (`adaptive_kl`): the SFT output's first j tokens for the smallest
  j in 0..count after which KL(SFT||LM) of the next token is below the threshold,
  else every token up to count (prior_logprobs.py).

A scores record: {"id", "prior_tokens", "prior_text", "prior_found"} (the prior used),
plus "candidates" ([[{"text", "mean_logprob"}]] per chosen word), "mean_logprob" and
"dropped" (gated; "candidate_text" is the prior before the gate), or
"kl_after_tokens" ([KL after j = 0..available tokens]) for the adaptive prior.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
from jax.sharding import Mesh

from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.core.errors import UserError
from pretty_jax.core.progress import Progress
from pretty_jax.engine import parallel
from pretty_jax.experiments.prior_logprobs import (
    adaptive_prior_lengths,
    continuation_logprobs,
)
from pretty_jax.experiments.priors import Prior, PriorSources, PriorSpec, build_prior
from pretty_jax.experiments.stages import JsonlStage
from pretty_jax.models import Model
from pretty_jax.tasks import Example
from pretty_jax.tasks.dictionary import dictionary_prior_options

SCORES_SUFFIX = ".scores"


@dataclasses.dataclass(frozen=True)
class PriorJudges:
    """What scoring needs: the models, the tokenizer they share and how to batch."""

    foundation: Model
    tokenizer: Any
    sft: Model | None = None
    mesh: Mesh | None = None
    batch_size: int = 8
    separator: str = " "
    target_lang: str = ""

    def mean_logprobs(self, prompt_ids: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> list[float]:
        """The foundation's mean log-prob per token of each candidate after its prompt
        (-inf for a candidate of no tokens)."""
        logprobs = continuation_logprobs(self.foundation, prompt_ids, candidates, self.mesh, self.batch_size,
                                         self.tokenizer.pad_token_id or 0)
        return [float(np.mean(lp)) if lp.size else -np.inf for lp in logprobs]


def _chosen_dictionary_priors(judges: PriorJudges, spec: PriorSpec, examples: Sequence[Example],
                              prompts: Sequence[str], prompt_ids: Sequence[Sequence[int]],
                              sources: PriorSources) -> list[tuple[Prior, list]]:
    """The foundation's choice among the dictionary's translations, word by word; each
    word is one batched pass over every example's candidates."""
    options = [dictionary_prior_options(e.source, sources.dictionary, spec.count) or [] for e in examples]
    chosen: list[list[str]] = [[] for _ in examples]
    rounds: list[list] = [[] for _ in examples]
    for word in range(max(map(len, options), default=0)):
        rows = [(i, " ".join(chosen[i] + [t])) for i in range(len(examples)) if len(options[i]) > word
                for t in options[i][word]]
        ids = [continuation_ids(judges.tokenizer, prompts[i], text, judges.separator) for i, text in rows]
        scores = judges.mean_logprobs([prompt_ids[i] for i, _ in rows], ids)
        for i in range(len(examples)):
            mine = [(text, score) for (row, text), score in zip(rows, scores) if row == i]
            if mine:
                rounds[i].append([{"text": text, "mean_logprob": score if np.isfinite(score) else None}  # JSON has no -inf
                                  for text, score in mine])
                best = int(np.argmax([score for _, score in mine]))  # the first of equal maxima
                chosen[i].append(options[i][word][best])
    priors = []
    for i, words in enumerate(chosen):
        text = " ".join(words)
        ids = continuation_ids(judges.tokenizer, prompts[i], text, judges.separator) if words else []
        priors.append((Prior(tuple(ids), text, bool(words)), rounds[i]))
    return priors


def _adaptive_records(judges: PriorJudges, spec: PriorSpec, examples: Sequence[Example],
                      prompt_ids: Sequence[Sequence[int]], sources: PriorSources) -> list[dict]:
    sft_tokens = [list(sources.sft_tokens[e.id]) for e in examples]
    counts, divergences = adaptive_prior_lengths(
        judges.foundation, judges.sft, prompt_ids, sft_tokens, spec.count, spec.adaptive_kl, judges.mesh,
        judges.batch_size, judges.tokenizer.pad_token_id or 0)
    records = []
    for example, tokens, k, kl in zip(examples, sft_tokens, counts, divergences):
        ids = tokens[:k]
        records.append({"id": example.id, "prior_tokens": ids, "prior_text": judges.tokenizer.decode(ids),
                        "prior_found": bool(tokens), "kl_after_tokens": [float(v) for v in kl]})
    return records


def _gate(judges: PriorJudges, spec: PriorSpec, records: list[dict], prompt_ids: Sequence[Sequence[int]]) -> None:
    """Drops (in place) the priors whose mean log-prob is below spec.min_logprob."""
    with_prior = [i for i, r in enumerate(records) if r["prior_tokens"]]
    scores = judges.mean_logprobs([prompt_ids[i] for i in with_prior], [records[i]["prior_tokens"] for i in with_prior])
    for record in records:
        record |= {"mean_logprob": None, "dropped": False, "candidate_text": record["prior_text"]}
    for i, score in zip(with_prior, scores):
        records[i]["mean_logprob"] = score
        if score < spec.min_logprob:
            records[i] |= {"dropped": True, "prior_tokens": [], "prior_text": ""}


def score_priors(judges: PriorJudges, spec: PriorSpec, examples: Sequence[Example], prompts: Sequence[str],
                 prompt_ids: Sequence[Sequence[int]], sources: PriorSources) -> list[dict]:
    """The scores records of `examples` (one batch of a stage) under `spec`'s rules."""
    if spec.adaptive_kl is not None:
        return _adaptive_records(judges, spec, examples, prompt_ids, sources)
    if spec.choice == "foundation":
        built = _chosen_dictionary_priors(judges, spec, examples, prompts, prompt_ids, sources)
    else:
        built = [(build_prior(spec, e, p, judges.tokenizer, sources, judges.target_lang, judges.separator), None)
                 for e, p in zip(examples, prompts)]
    records = []
    for example, (prior, rounds) in zip(examples, built):
        records.append({"id": example.id, "prior_tokens": list(prior.token_ids), "prior_text": prior.text,
                        "prior_found": prior.found} | ({} if rounds is None else {"candidates": rounds}))
    if spec.min_logprob is not None:
        _gate(judges, spec, records, prompt_ids)
    return records


def scored_priors(stage: JsonlStage, done: int, judges: PriorJudges, spec: PriorSpec, examples: Sequence[Example],
                  prompts: Sequence[str], prompt_ids: Sequence[Sequence[int]], sources: PriorSources,
                  name: str) -> list[Prior]:
    """Runs the scores stage for the examples it lacks (`done` of them are there), a
    batch at a time; returns every example's prior."""
    if done > len(examples) or [r["id"] for r in stage.records] != [e.id for e in examples[:done]]:
        raise UserError(f"{stage.path} does not hold the first scores of this run's examples; use --overwrite")
    with Progress(len(examples), name, initial=done) as progress:
        for first in range(done, len(examples), judges.batch_size):
            rows = range(first, min(first + judges.batch_size, len(examples)))
            stage.append(score_priors(judges, spec, [examples[i] for i in rows], [prompts[i] for i in rows],
                                      [prompt_ids[i] for i in rows], sources), write=parallel.is_main_process())
            progress.update(len(rows))
    return [Prior(tuple(r["prior_tokens"]), r["prior_text"], r["prior_found"], r.get("dropped", False))
            for r in stage.records]


def system_summary(spec: PriorSpec, records: Sequence[dict]) -> dict:
    """What results.json adds to a scored system: "prior_dropped" (gated: how many
    priors were dropped), "mean_prior_tokens" and "prior_token_counts" (adaptive: the
    mean k and how many examples used each k)."""
    if spec.min_logprob is not None:
        return {"prior_dropped": sum(bool(r.get("prior_dropped")) for r in records)}
    if spec.adaptive_kl is not None:
        counts = [len(r["prior_tokens"]) for r in records]
        return {"mean_prior_tokens": float(np.mean(counts)) if counts else None,
                "prior_token_counts": {str(k): counts.count(k) for k in sorted(set(counts))}}
    return {}
