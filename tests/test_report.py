"""report.md and the sweep figure from a results.json built of real Flores lines: scores
with intervals and significance marks, p-values, no "prior found" for systems without a
prior, an examples section, and a sweep figure with a title and readable legend."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from pretty_jax.experiments import report

from pretty_jax.experiments.report import build_results, example_outputs, plot_sweep, report_markdown
from pretty_jax.experiments.significance import pair_significance
from pretty_jax.tasks import Example
from pretty_jax.tasks.flores import FloresTask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flores101_devtest"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real Flores-101 devtest) is absent")
N = 40


def _drop_every(lines: list[str], nth: int) -> list[str]:
    return [" ".join(w for i, w in enumerate(line.split(), 1) if i % nth) for line in lines]


def _system(label: str, prior: dict | None, metrics: dict, found: float | None = None, **extra) -> dict:
    return {"label": label, "prior": prior, "metrics": metrics, "prior_found_rate": found, **extra}


@pytest.fixture(scope="module")
def results() -> dict:
    task = FloresTask(DATA, "devtest", "eng", "deu", limit=N)
    examples: list[Example] = task.examples()
    references = [e.reference for e in examples]
    predictions = {"none": [e.source for e in examples], "sft-1tok": _drop_every(references, 2),
                   "sft-2tok": _drop_every(references, 3), "sft-kl0.5-max3tok": _drop_every(references, 3),
                   "sft": references[:1] + _drop_every(references[1:], 3)}
    none = {"kind": "none", "count": 0, "unit": "tokens"}
    systems = {
        "none": _system("foundation", none, task.score(predictions["none"], examples), 1.0),
        "sft-1tok": _system("foundation + sft prior (1 token)", {"kind": "sft", "count": 1, "unit": "tokens"},
                            task.score(predictions["sft-1tok"], examples), 1.0),
        "sft-2tok": _system("foundation + sft prior (2 tokens)", {"kind": "sft", "count": 2, "unit": "tokens"},
                            task.score(predictions["sft-2tok"], examples), 0.95),
        "sft-kl0.5-max3tok": _system("foundation + sft prior (adaptive, up to 3 tokens, KL < 0.5)",
                                     {"kind": "sft", "count": 3, "unit": "tokens", "adaptive_kl": 0.5},
                                     task.score(predictions["sft-kl0.5-max3tok"], examples), 1.0,
                                     mean_prior_tokens=1.4, prior_token_counts={"1": 24, "2": 16}),
        "sft": _system("SFT model", None, task.score(predictions["sft"], examples)),
    }
    pair = {"task": "translation", "source_lang": "eng", "target_lang": "deu", "examples": N, "systems": systems,
            "significance": pair_significance("translation", "eng", "deu", predictions, examples),
            "example_outputs": example_outputs(examples, predictions)}
    return build_results("translation", "foundation-dir", "sft-dir", {"eng-deu": pair}, [0, 1, 2])


def test_report_marks_intervals_and_differences(results):
    pair = results["pairs"]["eng-deu"]
    report = report_markdown(results)
    assert json.loads(json.dumps(results, allow_nan=False)) == results
    row = next(line for line in report.splitlines() if line.startswith("| foundation + sft prior (1 token) |"))
    chrf = pair["systems"]["sft-1tok"]["metrics"]["chrf"]
    half_width = pair["significance"]["intervals"]["sft-1tok"]["chrf"]["half_width"]
    assert f"| {chrf:.2f} ±{half_width:.2f}†‡ |" in row  # differs from the foundation and from the SFT model
    two = next(line for line in report.splitlines() if line.startswith("| foundation + sft prior (2 tokens) |"))
    assert pair["significance"]["p_values"]["sft"]["sft-2tok"]["chrf"] > 0.05
    assert "±" in two and "‡" not in two  # one sentence of 40 apart from the SFT model: no mark
    assert "paired bootstrap resampling of the examples (1000 resamples, seed 12345" in report
    assert "### p-values (paired bootstrap)" in report and "| chrF++ vs foundation |" in report


def test_prior_found_only_for_systems_with_a_prior(results):
    lines = report_markdown(results).splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| system |")))
    table = lines[start : lines.index("", start)]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table[2:]}
    header = table[0].split(" | ")
    found = header.index("prior found")
    assert rows["foundation"][found] == "–" and rows["SFT model"][found] == "–"
    assert rows["foundation + sft prior (2 tokens)"][found] == "0.950"


def test_examples_section_shows_every_system_beside_the_reference(results):
    report = report_markdown(results)
    section = report.split("### Examples", 1)[1]
    shown = results["pairs"]["eng-deu"]["example_outputs"][0]
    assert f"| source | {shown['source']} |" in section and f"| reference | {shown['reference']} |" in section
    for label in ("foundation", "foundation + sft prior (1 token)", "SFT model"):
        assert f"| {label} | " in section
    assert section.count("| reference |") == 3


def test_sweep_figure_has_a_title_integer_ticks_intervals_and_readable_labels(results, tmp_path, monkeypatch):
    plot_sweep(results, tmp_path / "sweep.png")
    assert matplotlib.image.imread(tmp_path / "sweep.png").shape[2] in (3, 4)
    drawn = []
    monkeypatch.setattr(report, "save_figure", lambda figure, path, rect=None: drawn.append(figure))
    plot_sweep(results, tmp_path / "again.png")
    figure = drawn[0]
    axis = figure.axes[0]
    assert axis.get_title() == "chrF++ against the number of SFT prior tokens"
    figure.canvas.draw()
    assert [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]] == [0, 1, 2]
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "eng → deu: adaptive SFT prior (KL < 0.5), at its mean k" in labels
    assert "95% interval (paired bootstrap)" in labels and not any("sft-kl" in label for label in labels)
    plt.close(figure)


def test_demo_summary_prints_intervals_and_marks(results):
    from pretty_jax.organism import demo

    pair = results["pairs"]["eng-deu"]
    text = demo.summary({"pairs": {demo.PAIR: pair}}, [("experiment", 1.0)], 1.0, Path("out"))
    row = next(line for line in text.splitlines() if "foundation + sft prior (1 token)" in line)
    chrf = pair["systems"]["sft-1tok"]["metrics"]["chrf"]
    half_width = pair["significance"]["intervals"]["sft-1tok"]["chrf"]["half_width"]
    assert f"{chrf:.1f} ±{half_width:.1f}†‡" in row
    assert "±: 95% interval half-width, paired bootstrap over the sentences (1000 resamples, seed 12345)" in text
