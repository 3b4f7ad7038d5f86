"""An experiment's inputs, read and checked before any model loads.

Reading a 7B pair onto a TPU VM takes minutes, so everything a user can get wrong is
checked first: each model path (exists, config.json of a supported family, weights
and tokenizer files present), each language pair's data, dictionary, lexicon and
refined file (they parse, the refined ids match the examples and repeat none, and no
file of one pair feeds another). Every input also gets a content fingerprint
(fingerprint.py) that guards a resumed run.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.tokenizer import TOKENIZER_FILES, check_tokenizer_files
from pretty_jax.core import fingerprint
from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import check_unique_ids, read_jsonl
from pretty_jax.tasks import Example, Task
from pretty_jax.tasks.registry import TaskData
from pretty_jax.tasks.languages import get_language

_SHOWN_IDS = 3


@dataclasses.dataclass(frozen=True)
class InputRecord:
    """One input as a run records it: the flag it came from, its absolute path and its
    fingerprint."""

    flag: str
    path: str
    fingerprint: Mapping[str, Any]

    def as_json(self) -> dict:
        return {"path": self.path, "fingerprint": dict(self.fingerprint)}


def check_model(path_text: str, flag: str) -> InputRecord:
    """Checks that `path_text` names a model this project loads (its config.json, the
    config's sizes against the weights' index, its tokenizer files), without reading
    its weights; returns its record (the local path a hub id or package reference
    resolves to, see `checkpoints.references`)."""
    path = loading.check_model_path(path_text, flag).absolute()
    directory = loading.model_directory(path, flag)
    config = loading.load_config(directory)
    try:
        loading.check_layer_count(directory, config)  # reads the weights' index, not the weights
    except FileNotFoundError as e:
        raise UserError(f"{flag}={path_text}: {e}") from None
    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise UserError(
            f"{flag}={path_text} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the tokenizer beside it"
        )
    check_tokenizer_files(directory)
    return InputRecord(flag, str(path), fingerprint.model_fingerprint(path))


def file_record(path: Path, flag: str) -> InputRecord:
    path = Path(path).expanduser().absolute()
    return InputRecord(flag, str(path), fingerprint.input_fingerprint(path))


def language_fields(source_lang: str, target_lang: str) -> dict[str, str]:
    """Placeholders a path flag may use: {source_lang}/{target_lang} as given, and
    {source_iso}/{target_iso} as ISO 639-1 codes (MUSE files are named en-de.txt)."""
    return {
        "source_lang": source_lang, "target_lang": target_lang,
        "source_iso": get_language(source_lang).iso639_1, "target_iso": get_language(target_lang).iso639_1,
    }


def fill_path(template: str, flag: str, source_lang: str, target_lang: str) -> Path:
    try:
        return Path(template.format(**language_fields(source_lang, target_lang))).expanduser()
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"--{flag}={template!r}: unknown placeholder {e}; use {{source_lang}}, {{target_lang}}, "
            "{source_iso} or {target_iso}"
        ) from None


def make_task(settings, target_lang: str) -> Task:
    """The Task of one language pair of `settings` (its examples read), by the registry."""
    path = fill_path(settings.data, "data", settings.source_lang, target_lang)
    spm = Path(settings.spm_model) if settings.spm_model else None
    return settings.task_kind.open(TaskData(path, settings.split, settings.source_lang, target_lang,
                                            settings.limit, spm))


def read_refined_file(path: Path) -> dict[str, str]:
    """jsonl {"id", "text"}: a refined system's outputs; a repeated id is refused naming
    both lines."""
    records = read_jsonl(path, "--refined_file", ("text",))
    for number, record in records:
        if "id" not in record:
            raise UserError(f'{path}:{number}: missing "id"')
    check_unique_ids(path, [(number, str(record["id"])) for number, record in records])
    return {str(record["id"]): record["text"] for _, record in records}


def match_refined(texts: Mapping[str, str], examples: list[Example], path: Path) -> int:
    """How many examples the refined file lacks (they get no refined prior; the report
    counts them); none matching is an error naming the file and a few expected ids. Ids
    of the file that match no evaluated example are logged with their count (a file for
    the whole data holds more than a run with --limit or --num_shots evaluates)."""
    missing = [e.id for e in examples if e.id not in texts]
    if len(missing) == len(examples):
        found = ", ".join(list(texts)[:_SHOWN_IDS]) or "none"
        raise UserError(
            f"--refined_file={path}: no id matches this run's examples (expected ids such as "
            f"{', '.join(e.id for e in examples[:_SHOWN_IDS])}; the file has {found})"
        )
    if missing:
        logging.warning("--refined_file=%s lacks %d of %d examples (e.g. %s): they get no refined prior",
                        path, len(missing), len(examples), ", ".join(missing[:_SHOWN_IDS]))
    evaluated = {e.id for e in examples}
    unmatched = [text_id for text_id in texts if text_id not in evaluated]
    if unmatched:
        logging.warning("--refined_file=%s holds %d ids that match no evaluated example (e.g. %s): they are unused",
                        path, len(unmatched), ", ".join(unmatched[:_SHOWN_IDS]))
    return len(missing)


@dataclasses.dataclass
class PairInputs:
    """One language pair's data and prior sources, read and checked.

    examples: the evaluated examples (after the few-shot ones, `shots`).
    records: input name -> InputRecord ("data", "dictionary", "lexicon", "refined_file").
    counts: "examples", "empty_references", "refined_missing" for the report.
    """

    task: Task
    examples: list[Example]
    shots: list[Example]
    dictionary: Mapping[str, tuple[str, ...]] | None = None
    lexicon: Mapping[str, str] | None = None
    refined_texts: Mapping[str, str] | None = None
    records: dict[str, InputRecord] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.task.source_lang}-{self.task.target_lang}"


def read_pair_inputs(settings, target_lang: str) -> PairInputs:
    """Reads and checks everything one pair of `settings` (experiment.Settings) needs
    besides the models."""
    task = make_task(settings, target_lang)
    examples = task.examples()
    if settings.num_shots >= len(examples):
        raise UserError(f"--num_shots={settings.num_shots} leaves no examples to evaluate ({len(examples)} read)")
    shots, examples = examples[: settings.num_shots], examples[settings.num_shots :]
    inputs = PairInputs(task, examples, shots)
    data_path = fill_path(settings.data, "data", settings.source_lang, target_lang).absolute()
    inputs.records["data"] = InputRecord(
        "--data", str(data_path), fingerprint.files_fingerprint([Path(p).absolute() for p in task.input_files])
    )
    empty = [e.id for e in examples if not e.reference.strip()]
    if empty:
        logging.warning("%s: %d of %d references are empty (e.g. %s); they are scored as given",
                        task.input_files[-1], len(empty), len(examples), ", ".join(empty[:_SHOWN_IDS]))
    inputs.counts = {"examples": len(examples), "empty_references": len(empty)}
    kinds = {spec.kind for spec in settings.systems()}
    if "dictionary" in kinds:
        _read_dictionary(settings, inputs)
    if "refined" in kinds and settings.refined_file:
        path = fill_path(settings.refined_file, "refined_file", settings.source_lang, target_lang)
        inputs.refined_texts = read_refined_file(path)
        inputs.counts["refined_missing"] = match_refined(inputs.refined_texts, examples, path)
        inputs.records["refined_file"] = file_record(path, "--refined_file")
    return inputs


def check_one_file_per_pair(settings, pairs: list[PairInputs]) -> None:
    """Refuses a per-pair input (--refined_file, --dictionary, --lexicon_data, and --data
    of the tasks that read one file per pair) that is the same file for two language
    pairs: one pair's file would silently feed the other."""
    names = ("refined_file", "dictionary", "lexicon") + (("data",) if settings.task_kind.data_per_pair else ())
    for name in names:
        pair_of: dict[str, str] = {}
        for pair in pairs:
            record = pair.records.get(name)
            if record is None:
                continue
            if record.path in pair_of:
                value = getattr(settings, record.flag.removeprefix("--"))
                raise UserError(
                    f"{record.flag}={value} is one file ({record.path}) for the pairs {pair_of[record.path]} and "
                    f"{pair.name}; give each pair its own: put {{target_lang}} or {{target_iso}} in the path where "
                    "the target language's code goes"
                )
            pair_of[record.path] = pair.name


def _read_dictionary(settings, inputs: PairInputs) -> None:
    """The task's dictionary (a MUSE file, a tag lexicon) into `inputs`."""
    source, target = inputs.task.source_lang, inputs.task.target_lang
    dictionary = settings.task_kind.dictionary
    value = getattr(settings, dictionary.setting)
    if not value:
        raise UserError(f"the dictionary prior for task={settings.task} needs --{dictionary.setting} ({dictionary.what})")
    path = fill_path(value, dictionary.setting, source, target)
    entries = dictionary.read(path)
    if dictionary.kind == "tags":
        inputs.lexicon = entries
    else:
        inputs.dictionary = entries
    inputs.records[dictionary.record] = file_record(path, f"--{dictionary.setting}")
