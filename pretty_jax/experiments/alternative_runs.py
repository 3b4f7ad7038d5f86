"""Decoding and scoring the alternative systems (alternatives.py) of every pair: each
system one `Generator` over its streams (engine/logits.py rule), every pair's stage of
that system in one pool of slots, resumable like the foundation's stages."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Sequence

from jax.sharding import Mesh

from pretty_jax.alignment.statistics import check_same_tokenizer
from pretty_jax.checkpoints.loading import load_model, load_tokenizer_of
from pretty_jax.engine.generator import Generator, System
from pretty_jax.experiments.alternative_alignment import system_alignment
from pretty_jax.experiments.alternatives import AlternativeSettings, AlternativeSpec, source_contrasts
from pretty_jax.experiments.pair import PairRun, Prepared, StageJob, run_stages
from pretty_jax.experiments.priors import build_prior
from pretty_jax.tasks import format_prompt


def check_vocabularies(settings, foundation_tokenizer=None) -> None:
    """Refuses proxy models whose tokenizer is not the foundation's (one line naming
    both), from the tokenizers alone: before any model loads."""
    alternatives: AlternativeSettings = settings.alternatives
    if not alternatives.proxy_tuned:
        return
    foundation_tokenizer = foundation_tokenizer or load_tokenizer_of(settings.foundation)
    for name, path in alternatives.model_paths().items():
        check_same_tokenizer(foundation_tokenizer, load_tokenizer_of(path), f"--foundation {settings.foundation}",
                             f"--{name} {path}")


def load_proxy_models(settings, place) -> dict:
    """The proxy pair's models by flag name (none without --proxy_tuned)."""
    return {name: load_model(path, settings.dtype, place=place)
            for name, path in settings.alternatives.model_paths().items()}


def _stream_prompts(run: PairRun, spec: AlternativeSpec) -> list[tuple[list[int], ...]]:
    """Each example's token ids in each stream of `spec`."""
    if spec.kind == "proxy":
        return [(ids, ids, ids) for ids in run.prompt_ids]
    tokenizer, fields, shots = run.models.tokenizer, run.task.prompt_fields(), run.inputs.shots
    streams = [run.prompt_ids]
    for contrast in spec.contrasts:
        if contrast == "source":
            others = source_contrasts(len(run.examples), run.settings.alternatives.contrastive_seed)
            examples = [dataclasses.replace(e, source=run.examples[j].source) for e, j in zip(run.examples, others)]
            prompts = [format_prompt(run.settings.template, e, fields, shots) for e in examples]
        else:  # the same prompt asking for the source language
            wrong = dict(fields) | {"tgt_lang": fields["src_lang"]}
            prompts = [format_prompt(run.settings.template, e, wrong, shots) for e in run.examples]
        streams.append([tokenizer(p).input_ids for p in prompts])
    return list(zip(*streams))


def _job(run: PairRun, prepared: Prepared, spec: AlternativeSpec) -> StageJob:
    tokenizer, settings = run.models.tokenizer, run.settings
    priors = [build_prior(spec.prior, e, p, tokenizer, prepared.sources, run.task.target_lang,
                          settings.answer_separator)
              for e, p in zip(run.examples, run.prompts)]
    return StageJob(run._stage(spec.key), run.examples, _stream_prompts(run, spec),
                    lambda i, g: run._output_record(i, g, priors[i]), lambda i: priors[i].token_ids)


def _system(spec: AlternativeSpec, models) -> System:
    if spec.kind == "proxy":
        return System(spec.rule(), (models.foundation, models.proxy["proxy_tuned"], models.proxy["proxy_base"]))
    return System(spec.rule(), (models.foundation,) * (1 + len(spec.contrasts)))


def _alignment(run: PairRun, prepared: Prepared, spec: AlternativeSpec, generator: Generator,
               records: list[dict]) -> dict:
    """The system's alignment SUMMARY with the SFT model along its own outputs."""
    priors = [r.get("prior_tokens", []) for r in records]
    stream_prefixes = [tuple(list(p) + prior for p in prompts) for prompts, prior in zip(_stream_prompts(run, spec), priors)]
    sft_prefixes = [list(p) + prior for p, prior in zip(prepared.sft_prompt_ids, priors)]
    return system_alignment(generator.system, run.models.sft, stream_prefixes, sft_prefixes,
                            [r["tokens"] for r in records], run.settings.agreement_k, generator.pad_id,
                            run.settings.batch_size)


def alternative_systems(runs: Sequence[PairRun], prepared: Sequence[Prepared], models, mesh: Mesh | None,
                        settings) -> list[dict[str, tuple[dict, list[dict]]]]:
    """Decodes every alternative system for every pair (`prepared[i]` is
    `runs[i].prepare()`) and returns, per pair, each system's results.json entry and
    output records by key."""
    specs = settings.alternatives.systems(settings.systems())
    results: list[dict[str, tuple[dict, list[dict]]]] = [{} for _ in runs]
    for spec in specs:
        generator = Generator(models.foundation, models.tokenizer, mesh=mesh, batch_size=settings.batch_size,
                              system=_system(spec, models))
        start = time.perf_counter()
        outputs = run_stages([_job(run, ready, spec) for run, ready in zip(runs, prepared)],
                             f"{spec.label}, {len(runs)} pairs", generator, settings.decode)
        logging.info("%s: %.1fs", spec.label, time.perf_counter() - start)
        for result, run, ready, records in zip(results, runs, prepared, outputs):
            found = [r.get("prior_found", True) for r in records]
            entry = {"label": spec.label, "prior": spec.prior.as_json() if spec.prior.key != "none" else None,
                     "system": spec.as_json(), "metrics": run.score(records),
                     "prior_found_rate": sum(found) / len(found) if found else None}
            if settings.align:
                entry["alignment"] = _alignment(run, ready, spec, generator, records)
            result[spec.key] = (entry, records)
    return results
