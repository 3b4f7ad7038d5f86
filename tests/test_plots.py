"""The alignment figures explain themselves: a title on each, integer ticks for steps and
counts, the examples behind each step with the thin tail faded, all three shift classes,
the box plot's marks in a legend, and lines that stay apart where their values meet."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pretty_jax.alignment import plots

LENGTHS = [3, 5, 8, 8, 9, 10, 12, 12, 14, 15] * 10  # 100 examples, the longest 15 steps


def _report() -> dict:
    rng = np.random.default_rng(0)
    by_prior = {}
    for k, good in (("0", 0.25), ("1", 0.9), ("2", 0.9)):
        examples = [{"id": str(i), "steps": {name: list(rng.random(n)) for name in ("p_sft_own", "p_lm_own", "p_lm_of_sft")}}
                    for i, n in enumerate(LENGTHS)]
        examples[0]["steps"]["p_sft_own"] = [1.0, 1.0, 1.0]
        per_step = [{"step": t, "examples": sum(n >= t for n in LENGTHS), "kl_sft_lm": 1.0 - good + 0.01 * t,
                     "js": 0.3 - good / 4, "token_shift": {"unshifted": good, "marginal": (1 - good) / 2,
                                                             "shifted": (1 - good) / 2}}
                    for t in range(1, max(LENGTHS) + 1)]
        by_prior[k] = {"overall": {"topk_agreement": {"1": good, "5": good + 0.05, "50": 1.0}}, "per_step": per_step,
                       "examples": examples}
    return {"top_k": [1, 5, 50], "by_prior_tokens": by_prior}


@pytest.fixture
def figures(monkeypatch, tmp_path) -> dict:
    """Each figure as drawn, kept open instead of saved."""
    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda figure, path, rect=None: drawn.__setitem__(path.name, figure))
    plots.draw_alignment_figures(_report(), tmp_path)
    yield drawn
    plt.close("all")


def _title(figure) -> str:
    return figure._suptitle.get_text() if figure._suptitle else " ".join(a.get_title() for a in figure.axes)


def test_every_figure_has_a_title_and_readable_legend(figures):
    assert set(figures) == set(plots.FIGURES)
    for name, figure in figures.items():
        assert _title(figure).strip(), name
        labels = [t.get_text() for a in figure.axes if a.get_legend() for t in a.get_legend().get_texts()]
        labels += [t.get_text() for legend in figure.legends for t in legend.get_texts()]
        assert labels, name
        assert all("-" not in label.split()[0] and "_" not in label for label in labels), labels


def _integer_ticks(axis, which: str) -> bool:
    axis.figure.canvas.draw()
    ticks = axis.get_xticks() if which == "x" else axis.get_yticks()
    low, high = axis.get_xlim() if which == "x" else axis.get_ylim()
    shown = [t for t in ticks if low <= t <= high]
    return len(shown) >= 2 and all(float(t).is_integer() for t in shown)


@pytest.mark.parametrize("name", ["divergence_by_step.png", "token_shift_by_step.png"])
def test_steps_and_counts_have_integer_ticks_and_the_thin_tail_is_faded(figures, name):
    figure = figures[name]
    value_axes, count_axes = figure.axes[: len(figure.axes) // 2], figure.axes[len(figure.axes) // 2 :]
    minimum = plots.step_minimum(_report())
    assert minimum == 10  # 10% of 100 examples
    counts = [sum(n >= t for n in LENGTHS) for t in range(1, 16)]
    for axis in count_axes:
        assert _integer_ticks(axis, "x") and _integer_ticks(axis, "y")
        assert [list(line.get_ydata()) for line in axis.get_lines()[:3]] == [counts] * 3
    for axis in value_axes:
        solid = [line for line in axis.get_lines() if line.get_alpha() is None]
        faded = [line for line in axis.get_lines() if line.get_alpha() is not None]
        assert len(solid) == len(faded) == 3
        assert all(max(line.get_xdata()) == max(t for t, c in enumerate(counts, 1) if c >= minimum) for line in solid)
        assert all(max(line.get_xdata()) == 15 for line in faded)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["no prior", "1 prior token", "2 prior tokens", "faded: fewer than 10 examples reach the step"]


def test_token_shift_shows_all_three_classes(figures):
    titles = [a.get_title() for a in figures["token_shift_by_step.png"].axes[:3]]
    assert [t.split(":")[0] for t in titles] == ["unshifted", "marginal", "shifted"]


def test_box_plot_explains_its_marks_and_shows_a_median_of_one(figures):
    figure = figures["selected_token_probability.png"]
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels[:2] == ["median", "mean"] and any(label.startswith("box:") for label in labels)
    axis = figure.axes[0]
    assert axis.get_ylim()[1] > 1.0
    medians = [line for line in axis.get_lines() if line.get_color() == "darkorange"]
    assert medians and all(not line.get_clip_on() and line.get_zorder() > 2 for line in medians)


def test_topk_lines_that_coincide_stay_distinguishable(figures):
    lines = figures["topk_agreement.png"].axes[0].get_lines()
    assert list(lines[1].get_ydata()) == list(lines[2].get_ydata())  # k = 1 and k = 2 agree here
    styles = {(line.get_marker(), line.get_linestyle(), line.get_markersize()) for line in lines}
    assert len(styles) == len(lines)
    assert len({tuple(line.get_xdata()) for line in lines}) == len(lines)  # side by side, not on top
