"""`run --mode=experiment`: the paper's evaluations as resumable stages.

Per language pair (OUT/<src>-<tgt>/):
  1. sft.jsonl          the SFT model's outputs (when --sft is given)
  2. refined.jsonl      a refined system's outputs (when --refined_model is given)
  3. <prior>.jsonl      the foundation's outputs with each prior prefilled
                        (none.jsonl, sft-1tok.jsonl, dictionary-1word.jsonl, ...)
  4. scores of every system -> OUT/results.json and OUT/report.md (see report.py)
  5. alignment.json + figures (with --align), from the outputs above

Stages append finished examples and resume after a kill (see stages.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from pretty_jax import parallel, report
from pretty_jax.align_run import PromptExample, run_alignment, write_alignment_outputs
from pretty_jax.alignment import check_same_tokenizer
from pretty_jax.checkpoint import LoadedModel, load_model
from pretty_jax.errors import UserError
from pretty_jax.experiment_inputs import InputRecord, PairInputs, check_model, read_pair_inputs
from pretty_jax.generate import DecodeConfig, Generator
from pretty_jax.priors import PriorSources, PriorSpec, build_prior
from pretty_jax.run_dir import RunDirectory, check_output_dir
from pretty_jax.sampling import BeamSearch, Sampling
from pretty_jax.stages import JsonlStage, RunRecord
from pretty_jax.tasks import Example, format_prompt
from pretty_jax.tasks.crosssum import truncate_documents
from pretty_jax.tasks.languages import get_language
from pretty_jax.tokenizer import load_tokenizer

TASKS = ("translation", "summarization", "pos")
DEFAULT_TEMPLATES = {
    "translation": "Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {source}\n{tgt_lang}:",
    "summarization": "Summarize the following {src_lang} article in {tgt_lang}.\nArticle: {source}\nSummary in {tgt_lang}:",
    "pos": "Tag each word of this {lang} sentence with its universal part-of-speech tag, one tag "
    "per word ({upos_tags}).\nSentence: {source}\nTags:",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs (built from flags by run.py); field names are the flags'.

    data: the dataset path; may contain {source_lang} / {target_lang}.
    priors: the foundation systems to run; sweep: SFT prior sizes (tokens) for Fig. 5.
    foundation / sft / refined_model: model paths (sft and refined_model optional).
    """

    task: str
    data: str
    split: str
    source_lang: str
    target_langs: tuple[str, ...]
    limit: int | None
    template: str
    num_shots: int
    priors: tuple[PriorSpec, ...]
    sweep: tuple[int, ...]
    decode: DecodeConfig
    batch_size: int
    output_dir: Path
    foundation: str = ""
    sft: str | None = None
    refined_model: str | None = None
    dtype: str = "bfloat16"
    answer_separator: str = " "
    refined_file: str | None = None
    dictionary: str | None = None
    lexicon_data: str | None = None
    spm_model: str | None = None
    align: bool = False
    align_prior_tokens: tuple[int, ...] = (0, 1, 2)
    trajectory: str = "foundation"
    agreement_k: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
    stats_chunk: int = 16

    def systems(self) -> list[PriorSpec]:
        """The foundation's prior settings: --priors plus the sweep, without repeats."""
        specs = list(self.priors) + [PriorSpec("sft", k, "tokens") if k else PriorSpec("none") for k in self.sweep]
        unique = {}
        for spec in specs:
            unique.setdefault(spec.key, spec)
        return list(unique.values())

    def validate(self) -> None:
        """Raises UserError naming the first flag that cannot work (before anything is read)."""
        if self.task not in TASKS:
            raise UserError(f"--task={self.task!r}: use one of {', '.join(TASKS)}")
        for name, value, minimum in (("limit", self.limit, 1), ("num_shots", self.num_shots, 0),
                                     ("batch_size", self.batch_size, 1), ("stats_chunk", self.stats_chunk, 1)):
            if value is not None and value < minimum:
                raise UserError(f"--{name}={value} must be >= {minimum}")
        for spec in self.priors:
            if spec.kind != "none" and spec.count < 1:
                raise UserError(f"the {spec.kind} prior needs a size >= 1 (--num_prior_tokens / --num_prior_words)")
        if self.task != "pos":
            get_language(self.source_lang)
        for target in self.target_langs:
            get_language(target)
        if not self.foundation:
            raise UserError("--foundation is required (the foundation model)")
        kinds = {spec.kind for spec in self.systems()}
        if "sft" in kinds and not self.sft:
            raise UserError("the sft prior (in --priors or --sweep_prior_tokens) needs --sft (the SFT model)")
        if self.align and not self.sft:
            raise UserError("--align needs --sft (the SFT model)")
        if "refined" in kinds and not (self.refined_file or self.refined_model):
            raise UserError("the refined prior needs --refined_file or --refined_model")
        if self.refined_file and self.refined_model:
            raise UserError("give --refined_file or --refined_model, not both")
        if self.spm_model and not Path(self.spm_model).expanduser().is_file():
            raise UserError(f"--spm_model={self.spm_model} does not exist; give a SentencePiece .model file")

    def recorded(self, foundation: InputRecord) -> dict[str, Any]:
        """The settings every output of the run depends on, by flag name, as run_config.json
        records them (paths absolute, so a trailing slash changes nothing)."""
        return {
            "task": self.task, "data": os.path.abspath(os.path.expanduser(self.data)), "split": self.split,
            "source_lang": self.source_lang, "limit": self.limit, "prompt_template": self.template,
            "num_shots": self.num_shots, "answer_separator": self.answer_separator, "dtype": self.dtype,
            "foundation": foundation.as_json(), **decode_record(self.decode),
        }


def decode_record(config: DecodeConfig) -> dict[str, Any]:
    """A DecodeConfig by the names of the flags that set it."""
    strategy = config.strategy
    record = {"max_new_tokens": config.max_new_tokens, "stop_strings": list(config.stop_strings),
              "max_len": config.max_len, "overflow": config.overflow, "seed": config.seed,
              "num_beams": 1, "temperature": 0.0}
    if isinstance(strategy, Sampling):
        record |= {"temperature": strategy.temperature, "top_k": strategy.top_k, "top_p": strategy.top_p}
    elif isinstance(strategy, BeamSearch):
        record |= {"num_beams": strategy.num_beams, "length_penalty": strategy.length_penalty,
                   "early_stopping": strategy.early_stopping}
    return record


@dataclasses.dataclass
class Models:
    foundation: LoadedModel
    tokenizer: Any
    sft: LoadedModel | None = None
    sft_tokenizer: Any = None
    refined: LoadedModel | None = None
    refined_tokenizer: Any = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked experiment: settings, each pair's inputs and each model's record."""

    settings: Settings
    pairs: list[PairInputs]
    models: dict[str, InputRecord]

    def stage_inputs(self) -> dict[str, dict[str, Any]]:
        """Each stage file this run uses -> the inputs its content depends on (beyond
        the run's settings)."""
        stages = {}
        for pair in self.pairs:
            data = {"data": pair.records["data"].as_json()}
            if self.settings.sft:
                stages[f"{pair.name}/sft.jsonl"] = data | {"sft": self.models["sft"].as_json()}
            if self.settings.refined_model and any(s.kind == "refined" for s in self.settings.systems()):
                stages[f"{pair.name}/refined.jsonl"] = data | {"refined_model": self.models["refined_model"].as_json()}
            for spec in self.settings.systems():
                stages[f"{pair.name}/{spec.key}.jsonl"] = data | {"prior": dataclasses.asdict(spec)} | self._prior_inputs(spec, pair)
        return stages

    def _prior_inputs(self, spec: PriorSpec, pair: PairInputs) -> dict[str, Any]:
        if spec.kind == "sft":
            return {"sft": self.models["sft"].as_json()}
        if spec.kind == "refined":
            source = pair.records.get("refined_file") or self.models.get("refined_model")
            return {source.flag.lstrip("-"): source.as_json()}
        if spec.kind == "dictionary":
            source = pair.records.get("lexicon") or pair.records["dictionary"]
            return {source.flag.lstrip("-"): source.as_json()}
        return {}


def plan_experiment(settings: Settings) -> Plan:
    """Checks the settings, every model path and every pair's inputs; loads nothing."""
    settings.validate()
    models = {"foundation": check_model(settings.foundation, "--foundation")}
    if settings.sft:
        models["sft"] = check_model(settings.sft, "--sft")
    if settings.refined_model:
        models["refined_model"] = check_model(settings.refined_model, "--refined_model")
    pairs = [read_pair_inputs(settings, target) for target in settings.target_langs]
    names = [pair.name for pair in pairs]
    if len(set(names)) != len(names):
        raise UserError(f"--target_lang lists a language twice ({', '.join(names)})")
    return Plan(settings, pairs, models)


def _document_budget(settings: Settings, models: Models, template_only: str) -> int:
    max_len = settings.decode.max_len or getattr(models.foundation.config, "max_position_embeddings", 2048)
    overhead = len(models.tokenizer(template_only).input_ids) + 8
    return max(16, max_len - settings.decode.max_new_tokens - overhead)


def prompts_for(inputs: PairInputs, settings: Settings, models: Models) -> tuple[list[Example], list[str], dict[str, int]]:
    """Evaluation examples (summarisation documents cut to fit) and their prompts."""
    examples, fields = inputs.examples, inputs.task.prompt_fields()
    counts = dict(inputs.counts) | {"truncated_documents": 0}
    if settings.task == "summarization":
        empty = format_prompt(settings.template, Example("", "", ""), fields)
        budget = _document_budget(settings, models, empty)
        count = lambda text: len(models.tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
        examples, counts["truncated_documents"] = truncate_documents(examples, count, budget)
        if counts["truncated_documents"]:
            logging.warning("truncated %d of %d documents to %d tokens", counts["truncated_documents"], len(examples), budget)
    return examples, [format_prompt(settings.template, e, fields, inputs.shots) for e in examples], counts


def _agreed_done(stage: JsonlStage) -> int:
    """How many examples a stage holds, as process 0 sees it (processes may not share
    a filesystem)."""
    if jax.process_count() == 1:
        return stage.done
    return int(multihost_utils.broadcast_one_to_all(np.int32(stage.done)))


def run_stage(
    stage: JsonlStage,
    name: str,
    generator: Generator,
    examples: Sequence[Example],
    prompt_ids: Sequence[Sequence[int]],
    config: DecodeConfig,
    record: Callable[[int, Any], dict],
    priors: Callable[[int], Sequence[int]] = lambda i: (),
) -> list[dict]:
    """Generates the examples `stage` lacks, batch by batch, appending each batch.

    record(i, generation) -> the JSON record of example i. Returns all records in
    example order."""
    done = _agreed_done(stage)
    if done > len(examples) or [r["id"] for r in stage.records] != [e.id for e in examples[:done]]:
        raise UserError(f"{stage.path} does not hold the first outputs of this run's examples; use --overwrite")
    start, batch = time.perf_counter(), generator.batch_size
    for first in range(done, len(examples), batch):
        rows = range(first, min(first + batch, len(examples)))
        results = generator.generate(
            [prompt_ids[i] for i in rows], [priors(i) for i in rows], config, example_ids=list(rows)
        )
        stage.append([record(i, g) for i, g in zip(rows, results)], write=parallel.is_main_process())
        finished = rows[-1] + 1
        rate = (finished - done) / (time.perf_counter() - start)
        logging.info("%s: %d/%d examples, %.2f ex/s, ETA %.0fs", name, finished, len(examples), rate,
                     (len(examples) - finished) / rate)
    return stage.records


class PairRun:
    """One language pair of an experiment: its stages under OUT/<pair>/."""

    def __init__(self, plan: Plan, inputs: PairInputs, models: Models, record: RunRecord, mesh: Mesh | None):
        self.settings, self.inputs, self.models, self.record, self.mesh = plan.settings, inputs, models, record, mesh
        self.stage_inputs = plan.stage_inputs()
        self.task, self.name = inputs.task, inputs.name
        self.examples, self.prompts, self.counts = prompts_for(inputs, self.settings, models)
        self.prompt_ids = [models.tokenizer(p).input_ids for p in self.prompts]

    def _stage(self, key: str) -> JsonlStage:
        name = f"{self.name}/{key}.jsonl"
        return self.record.stage(name, self.stage_inputs[name])

    def _generator(self, model: LoadedModel, tokenizer) -> Generator:
        return Generator(model, tokenizer, mesh=self.mesh, batch_size=self.settings.batch_size)

    def _output_record(self, i: int, generation, prior=None) -> dict:
        """An output's record; with a prior, the generation includes the prior tokens
        (decoded together with the continuation, so spacing is the tokenizer's)."""
        tokens = list(generation.tokens)
        record = {"id": self.examples[i].id}
        if prior is not None:
            tokens = tokens[len(prior.token_ids) :]
            record |= {"prior_tokens": list(prior.token_ids), "prior_text": prior.text, "prior_found": prior.found}
        return record | {
            "tokens": tokens,
            "text": generation.text,
            "prediction": self.task.postprocess(generation.text),
            "finish_reason": generation.finish_reason,
        }

    def model_outputs(self, key: str, model: LoadedModel, tokenizer, label: str) -> list[dict]:
        """The outputs of a model prompted as the foundation is (the SFT or refined model)."""
        ids = [tokenizer(p).input_ids for p in self.prompts]
        return run_stage(self._stage(key), f"{self.name} {label}", self._generator(model, tokenizer),
                         self.examples, ids, self.settings.decode, self._output_record)

    def refined_texts(self) -> dict[str, str] | None:
        if self.inputs.refined_texts is not None:
            return dict(self.inputs.refined_texts)
        if self.models.refined is None:
            return None
        records = self.model_outputs("refined", self.models.refined, self.models.refined_tokenizer, "refined")
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

    def foundation_outputs(self, spec: PriorSpec, sources: PriorSources) -> list[dict]:
        priors = [
            build_prior(spec, e, p, self.models.tokenizer, sources, self.task.target_lang, self.settings.answer_separator)
            for e, p in zip(self.examples, self.prompts)
        ]
        return run_stage(
            self._stage(spec.key), f"{self.name} {spec.label}",
            self._generator(self.models.foundation, self.models.tokenizer), self.examples, self.prompt_ids,
            dataclasses.replace(self.settings.decode, include_prior=True),
            lambda i, g: self._output_record(i, g, priors[i]),
            priors=lambda i: priors[i].token_ids,
        )

    def score(self, records: list[dict]) -> dict:
        return self.task.score([r["prediction"] for r in records], self.examples)

    def run(self) -> dict:
        """Every stage of this pair; returns its results.json entry."""
        sft_records = None
        if self.models.sft is not None:
            sft_records = self.model_outputs("sft", self.models.sft, self.models.sft_tokenizer, "SFT")
        specs = self.settings.systems()
        sources = self.prior_sources(sft_records, specs)
        systems, outputs = {}, {}
        for spec in specs:
            outputs[spec.key] = self.foundation_outputs(spec, sources)
        logging.info("%s: scoring", self.name)
        for spec in specs:
            found = [r.get("prior_found", True) for r in outputs[spec.key]]
            systems[spec.key] = {
                "label": spec.label, "prior": dataclasses.asdict(spec), "metrics": self.score(outputs[spec.key]),
                "prior_found_rate": float(np.mean(found)) if found else None,
            }
        if sft_records is not None:
            systems["sft"] = {"label": "SFT model", "prior": None, "metrics": self.score(sft_records), "prior_found_rate": None}
        result = {"task": self.task.name, "source_lang": self.task.source_lang, "target_lang": self.task.target_lang,
                  **self.counts, "systems": systems}
        if self.settings.align:
            logging.info("%s: alignment statistics", self.name)
            result["alignment"] = self.alignment(sft_records, outputs)
        return result

    def alignment(self, sft_records: list[dict], outputs: dict[str, list[dict]]) -> dict:
        """alignment.json + figures under this pair's directory, reusing the outputs of
        the SFT-prior systems; returns the overall summaries."""
        continuations = {}
        for k in self.settings.align_prior_tokens:
            key = PriorSpec("sft", k, "tokens").key if k else "none"
            if key in outputs:
                continuations[k] = [r["tokens"] for r in outputs[key]]
        report = run_alignment(
            self.models.foundation, self.models.sft, self.models.tokenizer,
            [PromptExample(e.id, p, e.reference) for e, p in zip(self.examples, self.prompts)],
            self.settings.align_prior_tokens, self.settings.trajectory, self.settings.agreement_k,
            self.settings.decode, mesh=self.mesh, batch_size=self.settings.batch_size,
            chunk=self.settings.stats_chunk, sft_outputs=[r["tokens"] for r in sft_records],
            continuations=continuations,
        )
        write_alignment_outputs(self.record.run_dir, self.name, report)
        return {k: entry["overall"] for k, entry in report["by_prior_tokens"].items()}


def load_models(plan: Plan, mesh: Mesh | None = None) -> Models:
    """The plan's models, placed on `mesh`; a token-level SFT prior or alignment needs
    the SFT tokenizer to be the foundation's."""
    settings, place = plan.settings, parallel.param_placer(mesh)
    foundation = load_model(settings.foundation, settings.dtype, place=place)
    models = Models(foundation=foundation, tokenizer=load_tokenizer(foundation.directory))
    if settings.sft:
        models.sft = load_model(settings.sft, settings.dtype, place=place)
        models.sft_tokenizer = load_tokenizer(models.sft.directory)
        token_level = [s for s in settings.systems() if s.kind == "sft" and s.unit == "tokens"]
        if token_level or settings.align:
            check_same_tokenizer(models.tokenizer, models.sft_tokenizer, settings.foundation, settings.sft)
    if settings.refined_model:
        models.refined = load_model(settings.refined_model, settings.dtype, place=place)
        models.refined_tokenizer = load_tokenizer(models.refined.directory)
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

    Everything is checked before any model loads. A finished or interrupted run in the
    directory is resumed and extended (new priors, sweep sizes, languages reuse the
    stages they share with it); one these settings would change is refused, unless
    `overwrite` (or, for the demo, `start_fresh_on_change`) sets it aside: its files
    are deleted once the new run has finished, and files pretty_jax did not write are
    never touched.
    """
    check_output_dir(settings.output_dir, "--output_dir")
    plan = plan_experiment(settings)
    directory = open_output(settings.output_dir, "experiment")
    try:
        record = RunRecord(directory)
        recorded = settings.recorded(plan.models["foundation"])
        conflicts = record.conflicts(recorded, plan.stage_inputs())
        fresh = overwrite or (start_fresh_on_change and bool(conflicts))
        refuse_conflicts(settings.output_dir, [] if fresh else conflicts)
        start = time.perf_counter()
        models = load_models(plan, mesh)
        logging.info("models loaded in %.1fs", time.perf_counter() - start)
        if directory.holds_run and fresh:
            logging.warning("setting the earlier run in %s aside: %s", settings.output_dir,
                            "; ".join(conflicts) or "--overwrite")
            directory.retire()
            record.reset()
        record.start(recorded)
        results = run_pairs(plan, models, record, mesh)
        directory.discard_retired()
        return results
    finally:
        directory.close()


def run_pairs(plan: Plan, models: Models, record: RunRecord, mesh: Mesh | None = None) -> dict:
    """Runs every pair of a checked plan with loaded models into `record`'s directory;
    writes and returns results.json's content."""
    settings = plan.settings
    pairs = {}
    for inputs in plan.pairs:
        pairs[inputs.name] = PairRun(plan, inputs, models, record, mesh).run()
    results = report.build_results(settings.task, plan.models["foundation"].path,
                                   plan.models["sft"].path if "sft" in plan.models else None, pairs, settings.sweep)
    report.write_results(record.run_dir, results)
    return results
