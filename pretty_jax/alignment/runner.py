"""`run --mode=align`: the paper's alignment analysis end to end.

SFT model generates (greedy) -> for each k, prior = its first k tokens -> the
trajectory (the foundation's own continuation after the prior, the rest of the SFT
output, or the reference) -> statistics of both models along it -> alignment.json and
the figures.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

from jax.sharding import Mesh

from pretty_jax.alignment import plots, summary
from pretty_jax.alignment.statistics import AlignmentScorer
from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.core.textio import read_jsonl
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.models import Model


@dataclasses.dataclass(frozen=True)
class PromptExample:
    id: str
    prompt: str
    reference: str | None = None


def read_prompts_file(path: Path) -> list[PromptExample]:
    """jsonl with {"id", "prompt"} and optionally "reference" per line."""
    examples, seen = [], set()
    for number, record in read_jsonl(Path(path), "--prompts_file", ("prompt",)):
        example_id = str(record.get("id", number))
        if example_id in seen:
            raise UserError(f"{path}:{number}: duplicate id {example_id!r}")
        seen.add(example_id)
        examples.append(PromptExample(example_id, record["prompt"], record.get("reference")))
    return examples


def run_alignment(
    foundation: Model,
    sft: Model,
    tokenizer,
    names: tuple[str, str],
    examples: Sequence[PromptExample],
    prior_tokens: Sequence[int],
    trajectory: str,
    top_k: Sequence[int],
    decode: DecodeConfig,
    mesh: Mesh | None = None,
    batch_size: int = 8,
    chunk: int = 16,
    sft_outputs: Sequence[Sequence[int]] | None = None,
    continuations: dict[int, Sequence[Sequence[int]]] | None = None,
) -> dict:
    """Computes and returns the report (alignment.json's content).

    names: what the report calls the foundation and SFT models (their paths).

    sft_outputs / continuations: outputs an experiment already generated (the SFT model's,
    and the foundation's after k SFT prior tokens, by k); what is missing is generated.
    """
    start = time.perf_counter()
    ids = [e.id for e in examples]
    prompts = [tokenizer(e.prompt).input_ids for e in examples]
    references = None
    if trajectory == "reference":
        if any(e.reference is None for e in examples):
            raise UserError("--trajectory=reference needs a 'reference' for every example")
        references = [continuation_ids(tokenizer, e.prompt, e.reference) for e in examples]
    continuations = dict(continuations or {})
    if sft_outputs is None and trajectory != "reference":
        sft_generator = Generator(sft, tokenizer, mesh=mesh, batch_size=batch_size)
        sft_outputs = [list(g.tokens) for g in sft_generator.generate(prompts, config=decode)]
        logging.info("SFT outputs for %d prompts in %.1fs", len(prompts), time.perf_counter() - start)
    foundation_generator = Generator(foundation, tokenizer, mesh=mesh, batch_size=batch_size)
    scorer = AlignmentScorer(foundation, sft, mesh=mesh, batch_size=batch_size, chunk=chunk,
                             pad_id=foundation_generator.pad_id)
    by_prior = {}
    for k in prior_tokens:
        if trajectory == "foundation" and k not in continuations:
            priors = [list(s[:k]) for s in sft_outputs]
            results = foundation_generator.generate(prompts, priors, decode, example_ids=range(len(prompts)))
            continuations[k] = [list(g.tokens) for g in results]
        priors, prefixes, trajectories = summary.alignment_pairs(
            trajectory, k, prompts, sft_outputs or [], continuations.get(k), references
        )
        per_example = scorer.score(prefixes, trajectories)
        by_prior[k] = summary.prior_report(ids, priors, trajectories, per_example, top_k)
        overall = by_prior[k]["overall"]
        logging.info(
            "k=%d: %d steps, top-1 agreement %.3f, KL(sft||lm) %.3f",
            k, overall["steps"], overall["topk_agreement"][str(top_k[0])] or 0.0, overall["kl_sft_lm"] or 0.0,
        )
    return summary.build_report(
        names[0], names[1], trajectory, top_k, by_prior
    )


def write_alignment_outputs(run_dir: RunDirectory, relative_dir: str, report: dict) -> None:
    """alignment.json and the figures into `relative_dir` of the run's directory, each
    recorded and written atomically."""
    run_dir.write_text(Path(relative_dir) / summary.REPORT_FILE, summary.report_json(report))
    for name, paint in plots.PAINTERS.items():
        run_dir.write_with(Path(relative_dir) / name, lambda path, paint=paint: paint(report, path))
