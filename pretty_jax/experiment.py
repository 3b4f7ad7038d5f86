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
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from pretty_jax import parallel
from pretty_jax.align_run import PromptExample, run_alignment
from pretty_jax.checkpoint import LoadedModel
from pretty_jax.dictionary import read_muse, tag_lexicon
from pretty_jax.errors import UserError
from pretty_jax.generate import DecodeConfig, Generator
from pretty_jax.priors import PriorSources, PriorSpec, build_prior
from pretty_jax.stages import JsonlStage
from pretty_jax.tasks import Example, Task, format_prompt
from pretty_jax.tasks.crosssum import CrossSumTask, truncate_documents
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.languages import get_language
from pretty_jax.tasks.pos import PosTask, read_tagged
from pretty_jax.textio import read_jsonl

TASKS = ("translation", "summarization", "pos")
DEFAULT_TEMPLATES = {
    "translation": "Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {source}\n{tgt_lang}:",
    "summarization": "Summarize the following {src_lang} article in {tgt_lang}.\nArticle: {source}\nSummary in {tgt_lang}:",
    "pos": "Tag each word of this {lang} sentence with its universal part-of-speech tag, one tag "
    "per word ({upos_tags}).\nSentence: {source}\nTags:",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs besides the models (built from flags by run.py).

    data: the dataset path; may contain {source_lang} / {target_lang}.
    priors: the foundation systems to run; sweep: SFT prior sizes (tokens) for Fig. 5.
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


@dataclasses.dataclass
class Models:
    foundation: LoadedModel
    tokenizer: Any
    sft: LoadedModel | None = None
    sft_tokenizer: Any = None
    refined: LoadedModel | None = None
    refined_tokenizer: Any = None


def language_fields(source_lang: str, target_lang: str) -> dict[str, str]:
    """Placeholders a path flag may use: {source_lang}/{target_lang} as given, and
    {source_iso}/{target_iso} as ISO 639-1 codes (MUSE files are named en-de.txt)."""
    return {
        "source_lang": source_lang, "target_lang": target_lang,
        "source_iso": get_language(source_lang).iso639_1, "target_iso": get_language(target_lang).iso639_1,
    }


def fill_path(template: str, flag: str, source_lang: str, target_lang: str) -> Path:
    try:
        return Path(template.format(**language_fields(source_lang, target_lang)))
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"--{flag}={template!r}: unknown placeholder {e}; use {{source_lang}}, {{target_lang}}, "
            "{source_iso} or {target_iso}"
        ) from None


def make_task(settings: Settings, target_lang: str) -> Task:
    path = fill_path(settings.data, "data", settings.source_lang, target_lang)
    if settings.task == "translation":
        spm = Path(settings.spm_model) if settings.spm_model else None
        return FloresTask(path, settings.split, settings.source_lang, target_lang, settings.limit, spm)
    if settings.task == "summarization":
        return CrossSumTask(path, settings.source_lang, target_lang, settings.limit)
    return PosTask(path, target_lang, settings.limit)  # pos: the target languages are the tagged ones


def _document_budget(settings: Settings, models: Models, template_only: str) -> int:
    max_len = settings.decode.max_len or getattr(models.foundation.config, "max_position_embeddings", 2048)
    overhead = len(models.tokenizer(template_only).input_ids) + 8
    return max(16, max_len - settings.decode.max_new_tokens - overhead)


def prompts_for(task: Task, settings: Settings, models: Models) -> tuple[list[Example], list[str], dict[str, int]]:
    """Evaluation examples (after the few-shot examples) and their prompts."""
    examples = task.examples()
    if settings.num_shots >= len(examples):
        raise UserError(f"--num_shots={settings.num_shots} leaves no examples to evaluate ({len(examples)} read)")
    shots, examples = examples[: settings.num_shots], examples[settings.num_shots :]
    fields = task.prompt_fields()
    counts = {"examples": len(examples), "truncated_documents": 0}
    if settings.task == "summarization":
        empty = format_prompt(settings.template, Example("", "", ""), fields)
        budget = _document_budget(settings, models, empty)
        count = lambda text: len(models.tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
        examples, counts["truncated_documents"] = truncate_documents(examples, count, budget)
        if counts["truncated_documents"]:
            logging.warning("truncated %d of %d documents to %d tokens", counts["truncated_documents"], len(examples), budget)
    return examples, [format_prompt(settings.template, e, fields, shots) for e in examples], counts


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
    """One language pair of an experiment."""

    def __init__(self, settings: Settings, models: Models, target_lang: str, mesh: Mesh | None):
        self.settings, self.models, self.mesh = settings, models, mesh
        self.task = make_task(settings, target_lang)
        self.name = f"{self.task.source_lang}-{self.task.target_lang}"
        self.dir = settings.output_dir / self.name
        self.examples, self.prompts, self.counts = prompts_for(self.task, settings, models)
        self.prompt_ids = [models.tokenizer(p).input_ids for p in self.prompts]

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

    def sft_outputs(self) -> list[dict] | None:
        if self.models.sft is None:
            return None
        ids = [self.models.sft_tokenizer(p).input_ids for p in self.prompts]
        return run_stage(
            JsonlStage(self.dir / "sft.jsonl"), f"{self.name} SFT", self._generator(self.models.sft, self.models.sft_tokenizer),
            self.examples, ids, self.settings.decode, self._output_record,
        )

    def refined_texts(self) -> dict[str, str] | None:
        if self.settings.refined_file:
            return read_refined_file(Path(self.settings.refined_file))
        if self.models.refined is None:
            return None
        ids = [self.models.refined_tokenizer(p).input_ids for p in self.prompts]
        records = run_stage(
            JsonlStage(self.dir / "refined.jsonl"), f"{self.name} refined",
            self._generator(self.models.refined, self.models.refined_tokenizer),
            self.examples, ids, self.settings.decode, self._output_record,
        )
        return {r["id"]: r["prediction"] for r in records}

    def prior_sources(self, sft_records: list[dict] | None, specs: Sequence[PriorSpec]) -> PriorSources:
        kinds = {s.kind for s in specs}
        if "sft" in kinds and sft_records is None:
            raise UserError("the sft prior needs --sft (the SFT model)")
        lexicon = dictionary = None
        if "dictionary" in kinds:
            if self.settings.task == "pos":
                if not self.settings.lexicon_data:
                    raise UserError("the dictionary prior for POS needs --lexicon_data (a tagged CoNLL-U/XGLUE file)")
                path = fill_path(self.settings.lexicon_data, "lexicon_data", self.task.source_lang, self.task.target_lang)
                words_tags = read_tagged(path)
                lexicon = tag_lexicon(Example("", "", "", w, t) for w, t in words_tags)
            else:
                if not self.settings.dictionary:
                    raise UserError("the dictionary prior needs --dictionary (a MUSE file)")
                dictionary = read_muse(
                    fill_path(self.settings.dictionary, "dictionary", self.task.source_lang, self.task.target_lang)
                )
        return PriorSources(
            sft_tokens=None if sft_records is None else {r["id"]: r["tokens"] for r in sft_records},
            sft_texts=None if sft_records is None else {r["id"]: r["prediction"] for r in sft_records},
            refined_texts=self.refined_texts() if "refined" in kinds else None,
            dictionary=dictionary,
            lexicon=lexicon,
        )

    def foundation_outputs(self, spec: PriorSpec, sources: PriorSources) -> list[dict]:
        priors = [
            build_prior(spec, e, p, self.models.tokenizer, sources, self.task.target_lang, self.settings.answer_separator)
            for e, p in zip(self.examples, self.prompts)
        ]
        return run_stage(
            JsonlStage(self.dir / f"{spec.key}.jsonl"), f"{self.name} {spec.label}",
            self._generator(self.models.foundation, self.models.tokenizer), self.examples, self.prompt_ids,
            dataclasses.replace(self.settings.decode, include_prior=True),
            lambda i, g: self._output_record(i, g, priors[i]),
            priors=lambda i: priors[i].token_ids,
        )

    def score(self, records: list[dict]) -> dict:
        return self.task.score([r["prediction"] for r in records], self.examples)

    def run(self) -> dict:
        """Every stage of this pair; returns its results.json entry."""
        self.dir.mkdir(parents=True, exist_ok=True)
        sft_records = self.sft_outputs()
        specs = self.settings.systems()
        sources = self.prior_sources(sft_records, specs)
        systems = {}
        outputs = {}
        for spec in specs:
            outputs[spec.key] = self.foundation_outputs(spec, sources)
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
            result["alignment"] = self.alignment(sft_records, outputs)
        return result

    def alignment(self, sft_records: list[dict] | None, outputs: dict[str, list[dict]]) -> dict:
        """alignment.json + figures under this pair's directory, reusing the outputs of
        the SFT-prior systems; returns the overall summaries."""
        if self.models.sft is None:
            raise UserError("--align needs --sft")
        continuations = {}
        for k in self.settings.align_prior_tokens:
            key = PriorSpec("sft", k, "tokens").key if k else "none"
            if key in outputs:
                continuations[k] = [r["tokens"] for r in outputs[key]]
        report = run_alignment(
            self.models.foundation, self.models.sft, self.models.tokenizer,
            [PromptExample(e.id, p, e.reference) for e, p in zip(self.examples, self.prompts)],
            self.settings.align_prior_tokens, self.settings.trajectory, self.settings.agreement_k,
            self.settings.decode, self.dir, mesh=self.mesh, batch_size=self.settings.batch_size,
            chunk=self.settings.stats_chunk, write_files=parallel.is_main_process(),
            sft_outputs=[r["tokens"] for r in sft_records], continuations=continuations,
        )
        return {k: entry["overall"] for k, entry in report["by_prior_tokens"].items()}


def read_refined_file(path: Path) -> dict[str, str]:
    """jsonl {"id", "text"}: a refined system's outputs."""
    records = read_jsonl(path, "--refined_file", ("text",))
    for number, record in records:
        if "id" not in record:
            raise UserError(f'{path}:{number}: missing "id"')
    return {str(record["id"]): record["text"] for _, record in records}
