"""Tasks are registry entries: a task registered from user code runs through the
experiment's checks, inputs and report like the built-in ones, and nothing outside the
registry branches on a task's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sacrebleu

from pretty_jax.core.errors import UserError
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.experiments import Settings, report
from pretty_jax.experiments.inputs import check_one_file_per_pair, read_pair_inputs
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.tasks import Example, apply_limit
from pretty_jax.tasks.registry import TaskKind, get_task, register_task, task_names

PACKAGE = Path(__file__).resolve().parents[1] / "pretty_jax"


class LineTask:
    """A line-aligned parallel text: source.txt and target.txt in one folder per pair."""

    def __init__(self, folder: Path, source_lang: str, target_lang: str, limit: int | None):
        self.source_lang, self.target_lang = source_lang, target_lang
        self.input_files = [folder / "source.txt", folder / "target.txt"]
        pairs = zip(*(f.read_text(encoding="utf-8").splitlines() for f in self.input_files))
        self._examples = [Example(f"line-{i}", s, t) for i, (s, t) in enumerate(apply_limit(list(pairs), limit))]

    def examples(self):
        return list(self._examples)

    def prompt_fields(self):
        return {"src": self.source_lang, "tgt": self.target_lang}

    def postprocess(self, text):
        return text.strip()

    def score(self, predictions, examples):
        chrf = sacrebleu.corpus_chrf(predictions, [[e.reference for e in examples]], word_order=2).score
        return {"chrf": chrf, "target_language_rate": None}


@pytest.fixture(scope="module")
def lines_task():
    name = "test-lines"
    if name not in task_names():
        register_task(TaskKind(name=name, default_template="{src} to {tgt}: {source} =",
                               open=lambda data: LineTask(data.path, data.source_lang, data.target_lang, data.limit),
                               columns=(("chrf", "chrF++"),), main_metric="chrf"))
    return get_task(name)


def _settings(data: Path, **changes) -> Settings:
    values = dict(task="test-lines", data=str(data), split="", source_lang="eng", target_langs=("fra",), limit=None,
                  template="{src} to {tgt}: {source} =", num_shots=0, priors=(PriorSpec("none"),), sweep=(),
                  decode=DecodeConfig(), batch_size=2, output_dir="out", foundation="model")
    return Settings(**(values | changes))


def _write_pair(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "source.txt").write_text("the cat\nthe dog\n", encoding="utf-8")
    (folder / "target.txt").write_text("le chat\nle chien\n", encoding="utf-8")


def test_a_task_registered_in_user_code_reads_its_pairs_and_reports_its_columns(tmp_path, lines_task):
    _write_pair(tmp_path / "eng-fra")
    settings = _settings(tmp_path / "{source_lang}-{target_lang}")
    settings.validate()
    inputs = read_pair_inputs(settings, "fra")
    assert [e.reference for e in inputs.examples] == ["le chat", "le chien"]
    assert inputs.name == "eng-fra"
    pair = {"systems": {"none": {"label": "foundation", "metrics": {"chrf": 50.0, "target_language_rate": None},
                                 "prior_found_rate": 1.0}}}
    assert "chrF++" in report._pair_table("test-lines", pair)[0]


def test_a_registered_task_keeps_its_per_pair_and_dictionary_rules(tmp_path, lines_task):
    _write_pair(tmp_path / "one")
    shared = _settings(tmp_path / "one", target_langs=("fra", "deu"))
    with pytest.raises(UserError, match="one file .* for the pairs eng-fra and eng-deu"):
        check_one_file_per_pair(shared, [read_pair_inputs(shared, t) for t in shared.target_langs])
    with pytest.raises(UserError, match="task=test-lines has no dictionary prior"):
        _settings(tmp_path / "one", priors=(PriorSpec("dictionary", 1, "words"),)).validate()


def test_an_unknown_or_taken_task_name_is_refused(lines_task):
    with pytest.raises(UserError, match="task='nope': use one of translation, summarization, pos"):
        get_task("nope")
    with pytest.raises(UserError, match="the name is taken"):
        register_task(lines_task)


def test_no_module_outside_the_registry_branches_on_a_task_name():
    pattern = re.compile(r"task(_kind)?\s*(==|!=|\bin\b)\s*[\"'(\[{]|task\]?\s*==")
    offenders = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py")
                 if path.name != "registry.py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
