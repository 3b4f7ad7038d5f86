"""`run --mode=align`: the paper's alignment analysis end to end.

SFT model generates (greedy) -> for each k, prior = its first k tokens -> the
trajectory (the foundation's own continuation after the prior, the rest of the SFT
output, or the reference) -> statistics of both models along it -> alignment.json, the
figures and the explorer page (alignment.html).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from jax.sharding import Mesh

from pretty_jax.alignment import explorer, plots, summary
from pretty_jax.alignment.statistics import TOP_FIELDS, AlignmentScorer
from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import RunDirectory
from pretty_jax.core.textio import check_unique_ids, read_jsonl
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.models import Model


@dataclasses.dataclass(frozen=True)
class PromptExample:
    """One prompt to align on; `source` is what the explorer's list shows of it (the
    sentence or document the prompt asks about; the prompt itself when None)."""

    id: str
    prompt: str
    reference: str | None = None
    source: str | None = None


def read_prompts_file(path: Path) -> list[PromptExample]:
    """jsonl with {"id", "prompt"} and optionally "reference" and "source" (the text the
    explorer lists) per line (default id: the
    line number). Raises UserError naming path:line for an empty prompt, a reference that
    is not a string and a repeated id (naming both lines)."""
    records = read_jsonl(Path(path), "--prompts_file", ("prompt",), ("reference", "source"))
    for number, record in records:
        if not record["prompt"].strip():
            raise UserError(f'{path}:{number}: "prompt" is empty; every line needs a prompt to continue')
    numbered_ids = [(number, str(record.get("id", number))) for number, record in records]
    check_unique_ids(path, numbered_ids)
    return [PromptExample(example_id, record["prompt"], record.get("reference"), record.get("source"))
            for (_, example_id), (_, record) in zip(numbered_ids, records)]


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    """What the statistics compare.

    prior_tokens: the numbers k of SFT prior tokens (0 = none), one report section each.
    trajectory: whose tokens both models are teacher-forced through ("foundation": the
      foundation's own continuation after the prior; "sft"; "reference").
    top_k: the K values of the top-K agreement; decode: how continuations are generated;
    batch_size: rows per device batch; chunk: decoding steps whose full-vocabulary
      logits are alive at once.
    explorer_top_tokens: each model's most probable next tokens per step that the
      explorer page shows (0: no page).
    """

    prior_tokens: tuple[int, ...] = (0, 1, 2)
    trajectory: str = "foundation"
    top_k: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
    decode: DecodeConfig = DecodeConfig()
    batch_size: int = 8
    chunk: int = 16
    explorer_top_tokens: int = 10


@dataclasses.dataclass(frozen=True)
class ModelPair:
    """The foundation and SFT models, their shared tokenizer and the names the report
    gives them (their paths)."""

    foundation: Model
    sft: Model
    tokenizer: Any
    names: tuple[str, str]


def run_alignment(
    models: ModelPair,
    examples: Sequence[PromptExample],
    config: AlignmentConfig,
    mesh: Mesh | None = None,
    sft_outputs: Sequence[Sequence[int]] | None = None,
    continuations: dict[int, Sequence[Sequence[int]]] | None = None,
    sft_prompts: Sequence[Sequence[int]] | None = None,
) -> dict:
    """Computes and returns the report (alignment.json's content; with
    `config.explorer_top_tokens`, also the explorer page's data under
    `summary.EXPLORER_DATA`).

    sft_outputs / continuations: outputs an experiment already generated (the SFT model's,
    and the foundation's after k SFT prior tokens, by k); what is missing is generated.
    sft_prompts: the SFT model's own prompt ids per example (e.g. chat-formatted; default
      the foundation's). Each model is teacher-forced through the same prior + trajectory
      after its own prompt, and steps are compared by their index in the trajectory.
    """
    tokenizer = models.tokenizer
    ids = [e.id for e in examples]
    prompts = [tokenizer(e.prompt).input_ids for e in examples]
    references = _reference_ids(tokenizer, examples) if config.trajectory == "reference" else None
    continuations = dict(continuations or {})
    sft_prompts = prompts if sft_prompts is None else [list(p) for p in sft_prompts]
    if sft_outputs is None and config.trajectory != "reference":
        sft_outputs = _generate(models.sft, tokenizer, sft_prompts, None, config, mesh)
    foundation = Generator(models.foundation, tokenizer, mesh=mesh, batch_size=config.batch_size)
    scorer = AlignmentScorer(models.foundation, models.sft, mesh=mesh, batch_size=config.batch_size,
                             chunk=config.chunk, pad_id=foundation.pad_id, top_tokens=config.explorer_top_tokens)
    by_prior, tops = {}, {}
    for k in config.prior_tokens:
        if config.trajectory == "foundation" and k not in continuations:
            priors = [list(s[:k]) for s in sft_outputs]
            continuations[k] = _generate(models.foundation, tokenizer, prompts, priors, config, mesh)
        priors, prefixes, trajectories = summary.alignment_pairs(
            config.trajectory, k, prompts, sft_outputs or [], continuations.get(k), references
        )
        sft_prefixes = [p + list(prior) for p, prior in zip(sft_prompts, priors)]
        per_example = scorer.score(prefixes, trajectories, sft_prefixes)
        by_prior[k] = summary.prior_report(ids, priors, trajectories, per_example, config.top_k)
        tops[str(k)] = [{name: e[name] for name in TOP_FIELDS if name in e} for e in per_example]
        overall = by_prior[k]["overall"]
        logging.info("k=%d: %d steps, top-1 agreement %.3f, KL(sft||lm) %.3f", k, overall["steps"],
                     overall["topk_agreement"][str(config.top_k[0])] or 0.0, overall["kl_sft_lm"] or 0.0)
    report = summary.build_report(models.names[0], models.names[1], config.trajectory, config.top_k, by_prior)
    if config.explorer_top_tokens:
        report[summary.EXPLORER_DATA] = explorer.page_data(report, [e.prompt for e in examples], tops, tokenizer,
                                                              [e.source or e.prompt for e in examples])
    return report


def check_references(examples: Sequence[PromptExample], source: str = "") -> None:
    """Raises UserError naming the first example without a reference (which
    trajectory=reference needs); source: where the examples come from, e.g. a file."""
    lacking = next((e for e in examples if e.reference is None), None)
    if lacking is not None:
        where = f"{source}: " if source else ""
        raise UserError(f"trajectory=reference needs a 'reference' for every example; {where}example "
                        f"{lacking.id!r} has none")


def _reference_ids(tokenizer, examples: Sequence[PromptExample]) -> list[list[int]]:
    check_references(examples)
    return [continuation_ids(tokenizer, e.prompt, e.reference) for e in examples]


def _generate(model: Model, tokenizer, prompts, priors, config: AlignmentConfig, mesh) -> list[list[int]]:
    """Greedy (or `config.decode`) continuations of each prompt after its prior."""
    start = time.perf_counter()
    generator = Generator(model, tokenizer, mesh=mesh, batch_size=config.batch_size)
    results = generator.generate(prompts, priors, config.decode, example_ids=range(len(prompts)))
    logging.info("continuations of %d prompts in %.1fs", len(prompts), time.perf_counter() - start)
    return [list(g.tokens) for g in results]


def write_alignment_outputs(run_dir: RunDirectory, relative_dir: str, report: dict) -> None:
    """alignment.json, the figures and (when the report holds its data) the explorer
    page into `relative_dir` of the run's directory, each recorded and written atomically."""
    run_dir.write_text(Path(relative_dir) / summary.REPORT_FILE, summary.report_json(report))
    for name, paint in plots.PAINTERS.items():
        run_dir.write_with(Path(relative_dir) / name, lambda path, paint=paint: paint(report, path))
    if summary.EXPLORER_DATA in report:
        title = "Foundation vs SFT, token by token" + ("" if relative_dir in (".", "") else f": {relative_dir}")
        run_dir.write_text(Path(relative_dir) / explorer.PAGE_FILE, explorer.page_html(report[summary.EXPLORER_DATA], title))
