"""The task registry: each evaluation task (translation, summarization, pos, and any a
user registers) is one `TaskKind` value holding everything the experiment decides per
task: how its data is read, its default prompt, where its dictionary prior comes
from, how its examples fit a length budget and which metrics its report shows.
Nothing outside this module branches on a task's name.

A user adds a task from their own code before the run's settings are built:

    register_task(TaskKind(name="lines", default_template="...{source}...",
                           open=lambda data: MyTask(data.path, ...),
                           columns=(("chrf", "chrF++"),), main_metric="chrf"))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Literal, Mapping

from pretty_jax.core.errors import UserError
from pretty_jax.tasks import Example, Task
from pretty_jax.tasks.crosssum import CrossSumTask, truncate_documents
from pretty_jax.tasks.dictionary import read_muse, tag_lexicon
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.pos import PosTask, read_tagged


@dataclasses.dataclass(frozen=True)
class TaskData:
    """What opening one language pair of a task needs: the data path (placeholders
    filled), the split, the pair's languages, the example limit and the optional
    SentencePiece model for spBLEU."""

    path: Path
    split: str
    source_lang: str
    target_lang: str
    limit: int | None = None
    spm_model: Path | None = None


@dataclasses.dataclass(frozen=True)
class DictionaryFile:
    """Where a task's dictionary prior comes from.

    setting: the setting (flag) that names the file, e.g. "dictionary".
    record: its name among a pair's recorded inputs, e.g. "dictionary" or "lexicon".
    what: what the file is, for messages ("a MUSE file").
    kind: "translations" (word -> translations, first listed first) or "tags" (word -> tag).
    read: path -> the mapping.
    """

    setting: str
    record: str
    what: str
    kind: Literal["translations", "tags"]
    read: Callable[[Path], Mapping]


# How a task's examples fit a token budget: (examples, count tokens of a text, budget)
# -> (the examples cut to fit, how many were cut).
FitExamples = Callable[[list[Example], Callable[[str], int], int], tuple[list[Example], int]]


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One evaluation task.

    name: the value of --task.
    default_template: the prompt template when --prompt_template is not given.
    open: TaskData -> the Task of one language pair (reads its examples).
    columns: (metric, column title) of the report's table; main_metric: the one the
      sweep figure and "% of SFT" use.
    reads_source_language: False when the task has one language (POS: the tagged
      language is the target; --source_lang is unused and the pair is named by it).
    data_per_pair: each language pair reads its own --data file (so two pairs must
      not share one); False when one --data folder holds every language (Flores).
    dictionary: where the dictionary prior comes from.
    chooses_translations: --prior_choice=foundation may choose among the dictionary's
      translations of a word.
    fit: how examples are cut to fit the context (None: they are used whole).
    """

    name: str
    default_template: str
    open: Callable[[TaskData], Task]
    columns: tuple[tuple[str, str], ...]
    main_metric: str
    reads_source_language: bool = True
    data_per_pair: bool = True
    dictionary: DictionaryFile | None = None
    chooses_translations: bool = False
    fit: FitExamples | None = None

    def __post_init__(self):
        if self.main_metric not in dict(self.columns):
            raise ValueError(f"task {self.name}: main_metric {self.main_metric!r} is not among its columns")

    def column_title(self, metric: str) -> str:
        return dict(self.columns)[metric]


_REGISTRY: dict[str, TaskKind] = {}


def register_task(kind: TaskKind) -> TaskKind:
    """Adds `kind` to the tasks --task accepts; refuses a name already taken."""
    if kind.name in _REGISTRY:
        raise UserError(f"cannot register task {kind.name!r}: the name is taken")
    _REGISTRY[kind.name] = kind
    return kind


def get_task(name: str) -> TaskKind:
    """The registered task `name`; UserError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"task={name!r}: use one of {', '.join(task_names())}") from None


def task_names() -> list[str]:
    return list(_REGISTRY)


MUSE = DictionaryFile("dictionary", "dictionary", "a MUSE file", "translations", read_muse)

register_task(TaskKind(
    name="translation",
    default_template="Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {source}\n"
                     "{tgt_lang}:",
    open=lambda data: FloresTask(data.path, data.split, data.source_lang, data.target_lang, data.limit,
                                 data.spm_model),
    columns=(("bleu", "BLEU"), ("spbleu", "spBLEU"), ("chrf", "chrF++")),
    main_metric="chrf",
    data_per_pair=False,
    dictionary=MUSE,
    chooses_translations=True,
))

register_task(TaskKind(
    name="summarization",
    default_template="Summarize the following {src_lang} article in {tgt_lang}.\nArticle: {source}\n"
                     "Summary in {tgt_lang}:",
    open=lambda data: CrossSumTask(data.path, data.source_lang, data.target_lang, data.limit),
    columns=(("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")),
    main_metric="rougeL",
    dictionary=MUSE,
    fit=truncate_documents,
))

register_task(TaskKind(
    name="pos",
    default_template="Tag each word of this {lang} sentence with its universal part-of-speech tag, one tag "
                     "per word ({upos_tags}).\nSentence: {source}\nTags:",
    open=lambda data: PosTask(data.path, data.target_lang, data.limit),  # the target is the tagged language
    columns=(("pos_accuracy", "accuracy"),),
    main_metric="pos_accuracy",
    reads_source_language=False,
    dictionary=DictionaryFile("lexicon_data", "lexicon", "a tagged CoNLL-U/XGLUE file", "tags",
                              lambda path: tag_lexicon(Example("", "", "", w, t) for w, t in read_tagged(path))),
))
