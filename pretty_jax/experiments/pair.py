"""One language pair of an experiment: its prompts and its stages (SFT / refined
outputs, the foundation with each prior, scores, alignment) under OUT/<pair>/, and
`foundation_outputs`, which decodes every pair's foundation stages in one pool."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from pretty_jax.alignment.runner import (
    ModelPair,
    PromptExample,
    run_alignment,
    write_alignment_outputs,
)
from pretty_jax.core.errors import UserError
from pretty_jax.core.progress import Progress
from pretty_jax.engine import parallel
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.experiments import prior_scoring, report, significance
from pretty_jax.experiments.config import Settings
from pretty_jax.experiments.inputs import (
    PairInputs,
)
from pretty_jax.experiments.ordered import InOrder
from pretty_jax.experiments.plan import Models, Plan
from pretty_jax.experiments.priors import Prior, PriorSources, PriorSpec, build_prior
from pretty_jax.experiments.stages import JsonlStage, RunRecord
from pretty_jax.tasks import Example, format_prompt


def _document_budget(settings: Settings, models: Models, template_only: str) -> int:
    max_len = settings.decode.max_len or getattr(models.foundation.config, "max_position_embeddings", 2048)
    overhead = len(models.tokenizer(template_only).input_ids) + 8
    return max(16, max_len - settings.decode.max_new_tokens - overhead)


def prompts_for(inputs: PairInputs, settings: Settings, models: Models) -> tuple[list[Example], list[str], dict[str, int]]:
    """Evaluation examples (cut to fit the context where the task cuts them, e.g.
    summarisation documents) and their prompts."""
    examples, fields = inputs.examples, inputs.task.prompt_fields()
    counts = dict(inputs.counts) | {"truncated_documents": 0}
    fit = settings.task_kind.fit
    if fit is not None:
        empty = format_prompt(settings.template, Example("", "", ""), fields)
        budget = _document_budget(settings, models, empty)
        count = lambda text: len(models.tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
        examples, counts["truncated_documents"] = fit(examples, count, budget)
        if counts["truncated_documents"]:
            logging.warning("truncated %d of %d documents to %d tokens", counts["truncated_documents"], len(examples), budget)
    return examples, [format_prompt(settings.template, e, fields, inputs.shots) for e in examples], counts


def _agreed_done(stage: JsonlStage) -> int:
    """How many examples a stage holds, as process 0 sees it (processes may not share
    a filesystem)."""
    if jax.process_count() == 1:
        return stage.done
    return int(multihost_utils.broadcast_one_to_all(np.int32(stage.done)))


@dataclasses.dataclass(frozen=True)
class StageJob:
    """One stage's share of a pool: its file, its examples and their prompt ids, how to
    record example i's generation and which prior tokens example i decodes after."""

    stage: JsonlStage
    examples: Sequence[Example]
    prompt_ids: Sequence[Sequence[int]]
    record: Callable[[int, Any], dict]
    priors: Callable[[int], Sequence[int]] = lambda i: ()


def run_stages(jobs: Sequence[StageJob], name: str, generator: Generator, config: DecodeConfig) -> list[list[dict]]:
    """Generates the examples each stage lacks, all stages in one pool of slots (so the
    slots stay busy until the last example of the last stage), appending each record as
    soon as it and every example before it in its stage are finished (continuous
    batching finishes them out of order). Example i of every stage samples with
    example id i, as it would alone.

    record(i, generation) -> the JSON record of example i. Returns each stage's records
    in example order."""
    rows: list[tuple[int, int]] = []  # (job, example) per row of the pool
    writers = []
    for j, job in enumerate(jobs):
        done = _agreed_done(job.stage)
        if done > len(job.examples) or [r["id"] for r in job.stage.records] != [e.id for e in job.examples[:done]]:
            raise UserError(f"{job.stage.path} does not hold the first outputs of this run's examples; use --overwrite")
        writers.append(InOrder(job.stage, done, write=parallel.is_main_process()))
        rows += [(j, i) for i in range(done, len(job.examples))]
    total = sum(len(job.examples) for job in jobs)
    with Progress(total, name, initial=total - len(rows)) as progress:

        def finished(k: int, generation) -> None:
            j, i = rows[k]
            writers[j].add(i, jobs[j].record(i, generation))
            progress.update(1)

        if rows:
            generator.generate([jobs[j].prompt_ids[i] for j, i in rows], [jobs[j].priors(i) for j, i in rows], config,
                               example_ids=[i for _, i in rows], on_result=finished)
    for job, writer in zip(jobs, writers):
        if writer.pending or job.stage.done != len(job.examples):
            raise RuntimeError(f"{job.stage.path}: {len(job.examples) - job.stage.done} examples were not written")
    return [job.stage.records for job in jobs]


def foundation_outputs(runs: Sequence["PairRun"], prepared: Sequence["Prepared"], models: Models, mesh: Mesh | None,
                       settings: Settings) -> list[dict[str, list[dict]]]:
    """Every foundation system's outputs of every pair (per pair, by spec key), all the
    pairs' stages decoded in one pool of slots: the pool drains once, at the very end,
    instead of once per pair. `prepared[i]` is `runs[i].prepare()`."""
    jobs = [run.foundation_jobs(ready) for run, ready in zip(runs, prepared)]
    names = ", ".join(run.name for run in runs)
    systems = len(jobs[0]) if jobs else 0
    outputs = run_stages(
        [job for pair_jobs in jobs for job in pair_jobs],
        f"foundation, {systems} systems x {len(runs)} pairs ({names})",
        Generator(models.foundation, models.tokenizer, mesh=mesh, batch_size=settings.batch_size),
        settings.decode,
    )
    results, first = [], 0
    for ready, pair_jobs in zip(prepared, jobs):
        records = outputs[first : first + len(pair_jobs)]
        results.append({spec.key: r for spec, r in zip(ready.specs, records)})
        first += len(pair_jobs)
    return results


def role_generators(plan: Plan, models: Models, mesh: Mesh | None) -> dict[str, Generator]:
    """A Generator per prompted model ("sft", "refined"), stopping also at its
    end-of-turn tokens; every pair decodes with it (its programs and stop tables are
    built once)."""
    roles = {"sft": (models.sft, models.sft_tokenizer), "refined": (models.refined, models.refined_tokenizer)}
    return {role: Generator(plan.formats[role].stopping_model(model), tokenizer, mesh=mesh,
                            batch_size=plan.settings.batch_size)
            for role, (model, tokenizer) in roles.items() if model is not None and role in plan.formats}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a pair's stages before the foundation's produce (`PairRun.prepare`).

    specs: the foundation systems; sources: what their priors draw from.
    sft_records: the SFT model's output records (None without --sft).
    sft_prompt_ids: the SFT model's prompts in its own format (None without --sft).
    """

    specs: tuple[PriorSpec, ...]
    sources: PriorSources
    sft_records: list[dict] | None
    sft_prompt_ids: list[list[int]] | None


class PairRun:
    """One language pair of an experiment: its stages under OUT/<pair>/."""

    def __init__(self, plan: Plan, inputs: PairInputs, models: Models, record: RunRecord, mesh: Mesh | None,
                 generators: Mapping[str, Generator]):
        self.settings, self.inputs, self.models, self.record, self.mesh = plan.settings, inputs, models, record, mesh
        self.generators = generators  # role_generators
        self.stage_inputs = plan.stage_inputs()
        self.task, self.name = inputs.task, inputs.name
        self.examples, self.prompts, self.counts = prompts_for(inputs, self.settings, models)
        self.prompt_ids = [models.tokenizer(p).input_ids for p in self.prompts]
        self.formats = plan.formats

    def _stage(self, key: str) -> JsonlStage:
        name = f"{self.name}/{key}.jsonl"
        return self.record.stage(name, self.stage_inputs[name])

    def _output_record(self, i: int, generation, prior=None) -> dict:
        """An output's record: the prior's tokens and text, the continuation's tokens,
        and the answer's text (prior and continuation decoded together, so spacing is
        the tokenizer's). A prior longer than --max_new_tokens was cut to it by the
        engine: the record holds the part used ("prior_cut")."""
        record = {"id": self.examples[i].id}
        if prior is not None:
            used = list(generation.prior)
            cut = len(used) < len(prior.token_ids)
            text = self.models.tokenizer.decode(used, skip_special_tokens=True) if cut else prior.text
            record |= {"prior_tokens": used, "prior_text": text, "prior_found": prior.found}
            if prior.dropped:
                record["prior_dropped"] = True
            if cut:
                record["prior_cut"] = True
        return record | {
            "tokens": list(generation.tokens),
            "text": generation.answer_text,
            "prediction": self.task.postprocess(generation.answer_text),
            "finish_reason": generation.finish_reason,
        }

    def role_prompt_ids(self, key: str) -> list[list[int]]:
        """The examples' prompts as the SFT or refined model (`key`) reads them, in its
        own format (experiments/chat.py)."""
        return self.formats[key].prompt_ids(self.generators[key].tokenizer, self.examples, self.task.prompt_fields(),
                                            self.inputs.shots)

    def model_outputs(self, key: str, prompt_ids: Sequence[Sequence[int]], label: str) -> list[dict]:
        """The outputs of the SFT or refined model (`key`) on `prompt_ids`, stopping
        also at its end-of-turn tokens."""
        job = StageJob(self._stage(key), self.examples, prompt_ids, self._output_record)
        [records] = run_stages([job], f"{self.name} {label}", self.generators[key], self.settings.decode)
        return records

    def refined_texts(self) -> dict[str, str] | None:
        if self.inputs.refined_texts is not None:
            return dict(self.inputs.refined_texts)
        if self.models.refined is None:
            return None
        records = self.model_outputs("refined", self.role_prompt_ids("refined"), "refined")
        return {r["id"]: r["prediction"] for r in records}

    def prior_sources(self, sft_records: list[dict] | None, specs: Sequence[PriorSpec]) -> PriorSources:
        kinds = {s.kind for s in specs}
        return PriorSources(
            sft_tokens=None if sft_records is None else {r["id"]: r["tokens"] for r in sft_records},
            sft_texts=None if sft_records is None else {r["id"]: r["prediction"] for r in sft_records},
            refined_texts=self.refined_texts() if "refined" in kinds else None,
            dictionary=self.inputs.dictionary,
            lexicon=self.inputs.lexicon,
        )

    def scored_priors(self, spec: PriorSpec, sources: PriorSources) -> list[Prior]:
        """The priors the models judged first (prior_scoring.py), in their own stage."""
        stage = self._stage(spec.key + prior_scoring.SCORES_SUFFIX)
        judges = prior_scoring.PriorJudges(self.models.foundation, self.models.tokenizer, self.models.sft, self.mesh,
                                           self.settings.batch_size, self.settings.answer_separator,
                                           self.task.target_lang)
        return prior_scoring.scored_priors(stage, _agreed_done(stage), judges, spec, self.examples, self.prompts,
                                           self.prompt_ids, sources, f"{self.name} scoring {spec.label}")

    def foundation_jobs(self, prepared: "Prepared") -> list[StageJob]:
        """The stage of every foundation system, with its priors."""
        jobs = []
        for spec in prepared.specs:
            priors = self.scored_priors(spec, prepared.sources) if spec.scored else [
                build_prior(spec, e, p, self.models.tokenizer, prepared.sources, self.task.target_lang,
                            self.settings.answer_separator)
                for e, p in zip(self.examples, self.prompts)
            ]
            jobs.append(StageJob(self._stage(spec.key), self.examples, self.prompt_ids,
                                 lambda i, g, priors=priors: self._output_record(i, g, priors[i]),
                                 lambda i, priors=priors: priors[i].token_ids))
        return jobs

    def score(self, records: list[dict]) -> dict:
        return self.task.score([r["prediction"] for r in records], self.examples)

    def prepare(self) -> "Prepared":
        """The stages before the foundation's: the SFT (and refined) outputs the priors
        are made of."""
        sft_records = sft_prompt_ids = None
        if self.models.sft is not None:
            sft_prompt_ids = self.role_prompt_ids("sft")
            sft_records = self.model_outputs("sft", sft_prompt_ids, "SFT")
        specs = tuple(self.settings.systems())
        return Prepared(specs, self.prior_sources(sft_records, specs), sft_records, sft_prompt_ids)

    def finish(self, prepared: "Prepared", outputs: dict[str, list[dict]],
               alternatives: Mapping[str, tuple[dict, list[dict]]] | None = None) -> dict:
        """Scores and alignment from every system's outputs; returns this pair's
        results.json entry. `alternatives`: the alternative systems' entries and output
        records by key (alternative_runs.py), tested for significance with the rest."""
        specs, sft_records = prepared.specs, prepared.sft_records
        alternatives = alternatives or {}
        systems = {}
        logging.info("%s: scoring", self.name)
        for spec in specs:
            found = [r.get("prior_found", True) for r in outputs[spec.key]]
            systems[spec.key] = {
                "label": spec.label, "prior": spec.as_json(), "metrics": self.score(outputs[spec.key]),
                "prior_found_rate": float(np.mean(found)) if found else None,
            } | prior_scoring.system_summary(spec, outputs[spec.key])
        systems |= {key: entry for key, (entry, _) in alternatives.items()}
        if sft_records is not None:
            systems["sft"] = {"label": "SFT model", "prior": None, "metrics": self.score(sft_records), "prior_found_rate": None}
        result = {"task": self.settings.task, "source_lang": self.task.source_lang, "target_lang": self.task.target_lang,
                  **self.counts, "systems": systems}
        predictions = {key: [r["prediction"] for r in records] for key, records in outputs.items()}
        predictions |= {key: [r["prediction"] for r in records] for key, (_, records) in alternatives.items()}
        if sft_records is not None:
            predictions["sft"] = [r["prediction"] for r in sft_records]
        tested = significance.pair_significance(self.settings.task, self.task.source_lang, self.task.target_lang,
                                                predictions, self.examples)
        if tested is not None:
            result["significance"] = tested
        result["example_outputs"] = report.example_outputs(self.examples, predictions)
        if self.settings.align:
            logging.info("%s: alignment statistics", self.name)
            result["alignment"] = self.alignment(prepared, outputs)
        return result

    def alignment(self, prepared: "Prepared", outputs: dict[str, list[dict]]) -> dict:
        """alignment.json + figures under this pair's directory, reusing the outputs of
        the SFT-prior systems; returns the overall summaries."""
        continuations = {}
        for k in self.settings.align_prior_tokens:
            key = PriorSpec("sft", k, "tokens").key if k else "none"
            if key in outputs:
                continuations[k] = [r["tokens"] for r in outputs[key]]
        models = ModelPair(self.models.foundation, self.models.sft, self.models.tokenizer,
                           (str(Path(self.settings.foundation)), str(Path(self.settings.sft))))
        report = run_alignment(
            models, [PromptExample(e.id, p, e.reference, e.source) for e, p in zip(self.examples, self.prompts)],
            self.settings.alignment_config(), mesh=self.mesh,
            sft_outputs=[r["tokens"] for r in prepared.sft_records], continuations=continuations,
            sft_prompts=prepared.sft_prompt_ids,
        )
        write_alignment_outputs(self.record.run_dir, self.name, report)
        return {k: entry["overall"] for k, entry in report["by_prior_tokens"].items()}
