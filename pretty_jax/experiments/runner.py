"""`run --mode=experiment`: the paper's evaluations as resumable stages.

Per language pair (OUT/<src>-<tgt>/):
  1. sft.jsonl          the SFT model's outputs (when --sft is given)
  2. refined.jsonl      a refined system's outputs (when --refined_model is given)
  3. <prior>.jsonl      the foundation's outputs with each prior prefilled
                        (none.jsonl, sft-1tok.jsonl, dictionary-1word.jsonl, ...);
                        every pair's systems decode in one pool of slots
     <alternative>.jsonl  contrastive decoding and proxy tuning systems
                        (alternatives.py), one pool per system over every pair
  4. scores of every system -> OUT/results.json and OUT/report.md (see report.py)
  5. alignment.json + figures (with --align), from the outputs above

Steps 1-2 run for every pair, then step 3 for all pairs at once, then 4-5 per pair.

Stages append finished examples and resume after a kill (see stages.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Mapping

from jax.sharding import Mesh

from pretty_jax.alignment.statistics import check_same_tokenizer
from pretty_jax.checkpoints.loading import load_model, load_tokenizer_of
from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import RunDirectory, check_output_dir
from pretty_jax.engine import parallel
from pretty_jax.experiments import report
from pretty_jax.experiments.alternative_runs import alternative_systems, check_vocabularies, load_proxy_models
from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.pair import PairRun, foundation_outputs, role_generators
from pretty_jax.experiments.plan import Models, Plan, plan_experiment, with_formats
from pretty_jax.experiments.stages import RunRecord


def load_models(plan: Plan, mesh: Mesh | None = None) -> Models:
    """The plan's models, placed on `mesh`; a token-level SFT prior or alignment needs
    the SFT tokenizer to be the foundation's."""
    settings, place = plan.settings, parallel.param_placer(mesh)
    foundation = load_model(settings.foundation, settings.dtype, place=place)
    models = Models(foundation=foundation, tokenizer=load_tokenizer_of(settings.foundation))
    if settings.sft:
        models.sft = load_model(settings.sft, settings.dtype, place=place)
        models.sft_tokenizer = load_tokenizer_of(settings.sft)
        token_level = [s for s in settings.systems() if s.kind == "sft" and s.unit == "tokens"]
        if token_level or settings.align:
            check_same_tokenizer(models.tokenizer, models.sft_tokenizer, settings.foundation, settings.sft)
    if settings.refined_model:
        models.refined = load_model(settings.refined_model, settings.dtype, place=place)
        models.refined_tokenizer = load_tokenizer_of(settings.refined_model)
    models.proxy = load_proxy_models(settings, place)
    return models


def refuse_conflicts(output_dir: Path, conflicts: list[str]) -> None:
    """Raises (on every process) when process 0 found the recorded run at odds with this one."""
    error = None
    if conflicts:
        error = UserError(
            f"--output_dir={output_dir} holds a run that these settings would change:\n  "
            + "\n  ".join(conflicts)
            + "\nrerun with the recorded values, use another --output_dir, or pass --overwrite to start over "
            "(the old run is set aside and deleted only once the new one has finished)"
        )
    parallel.raise_everywhere(error)


def open_output(output_dir: Path, kind: str) -> RunDirectory:
    """The output directory, locked by process 0 (the others only read)."""
    if parallel.is_main_process():
        return RunDirectory.open(output_dir, kind, "--output_dir")
    return RunDirectory.passive(output_dir, kind, "--output_dir")


def run_experiment(settings: Settings, mesh: Mesh | None = None, overwrite: bool = False,
                   start_fresh_on_change: bool = False) -> dict:
    """Runs an experiment into `settings.output_dir`; returns results.json's content.

    Every input (flags, files, prompt templates and formats) is checked before the
    output directory is opened, so a refused run leaves it as it was. A finished or
    interrupted run in the directory is resumed and extended (new priors, sweep sizes,
    languages reuse the stages they share with it); one these settings would change is
    refused, unless `overwrite` (or, for the demo, `start_fresh_on_change`) sets it
    aside: its files are deleted once the new run has finished, and files pretty_jax
    did not write are never touched.
    """
    check_output_dir(settings.output_dir, "--output_dir")
    plan = with_formats(plan_experiment(settings))
    check_vocabularies(settings)
    recorded = settings.recorded(plan.models["foundation"])
    with output_run(settings.output_dir, "experiment", recorded, plan.stage_inputs(), overwrite,
                    start_fresh_on_change) as (record, begin):
        start = time.perf_counter()
        models = load_models(plan, mesh)
        logging.info("models loaded in %.1fs", time.perf_counter() - start)
        begin()
        return run_pairs(plan, models, record, mesh)


@contextlib.contextmanager
def output_run(output_dir: Path, kind: str, recorded: Mapping[str, Any], stage_inputs: Mapping[str, Any],
               overwrite: bool = False, start_fresh_on_change: bool = False):
    """A run into `output_dir`, the order every run keeps: open and lock it, refuse what
    would change the recorded run (unless `overwrite`, or `start_fresh_on_change` when
    something changed), then let the caller load its models and call `begin()`, which
    sets an earlier run aside and records these settings; the earlier run's files are
    deleted once the body has finished.

        with output_run(out, "align", settings, {}) as (record, begin):
            models = ...; begin(); ...
    """
    directory = open_output(output_dir, kind)
    try:
        record = RunRecord(directory)
        conflicts = record.conflicts(recorded, stage_inputs)
        fresh = overwrite or (start_fresh_on_change and bool(conflicts))
        refuse_conflicts(output_dir, [] if fresh else conflicts)

        def begin() -> None:
            if directory.holds_run and fresh:
                logging.warning("setting the earlier run in %s aside: %s", output_dir,
                                "; ".join(conflicts) or "--overwrite")
                directory.retire()
                record.reset()
            record.start(recorded)

        yield record, begin
        directory.discard_retired()
    finally:
        directory.close()


def run_pairs(plan: Plan, models: Models, record: RunRecord, mesh: Mesh | None = None) -> dict:
    """Runs every pair of a checked plan with loaded models into `record`'s directory;
    writes and returns results.json's content."""
    settings = plan.settings
    generators = role_generators(plan, models, mesh)
    runs = [PairRun(plan, inputs, models, record, mesh, generators) for inputs in plan.pairs]
    prepared = [run.prepare() for run in runs]
    outputs = foundation_outputs(runs, prepared, models, mesh, settings)
    alternatives = alternative_systems(runs, prepared, models, mesh, settings)
    pairs = {run.name: run.finish(ready, pair_outputs, pair_alternatives)
             for run, ready, pair_outputs, pair_alternatives in zip(runs, prepared, outputs, alternatives)}
    results = report.build_results(settings.task, plan.models["foundation"].path,
                                   plan.models["sft"].path if "sft" in plan.models else None, pairs, settings.sweep)
    results["prompt_formats"] = {role: formatting.record() for role, formatting in plan.formats.items()}
    report.write_results(record.run_dir, results)
    return results
