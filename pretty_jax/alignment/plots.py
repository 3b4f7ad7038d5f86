"""The alignment figures (the paper's Figs. 2-4), drawn from an alignment.json report
alone, so `scripts/plot_alignment.py` redraws them byte for byte.

  topk_agreement.png              share of steps whose SFT argmax is in the LM's top-K,
                                  against K, one line per number of prior tokens, each
                                  a little to the side so equal lines stay apart (Fig. 2)
  selected_token_probability.png  distributions of the probability of the selected
                                  tokens, per number of prior tokens (Fig. 3)
  divergence_by_step.png          KL(p_SFT || p_LM) and JS along the decoding steps (Fig. 4)
  token_shift_by_step.png         share of unshifted positions (the SFT token is the
                                  foundation's top 1), marginal ones (its 2nd-3rd) and
                                  shifted ones (beyond its top 3) along the steps, one
                                  line per number of prior tokens

The by-step figures have a panel of how many examples reach each step (outputs end at
different lengths): a step's mean over fewer than MIN_STEP_EXAMPLES examples is drawn
faded (at least MIN_STEP_EXAMPLES, and MIN_STEP_SHARE of the examples), so the noisy
tail is not read as a trend. Each number of prior tokens keeps its
colour, marker and line style in every figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FIGURES = ("topk_agreement.png", "selected_token_probability.png", "divergence_by_step.png", "token_shift_by_step.png")
# No timestamps or versions in the files: the same report gives the same bytes.
_PNG_METADATA = {"Software": None}
# A step's mean over fewer examples than this (or than MIN_STEP_SHARE of the examples
# at step 1, if more) is drawn faded.
MIN_STEP_EXAMPLES, MIN_STEP_SHARE = 5, 0.1
_MARKERS, _LINESTYLES, _SIZES = ("o", "s", "^", "D", "v", "P"), ("-", "--", ":", "-."), (8, 6.5, 5, 4)
_FADED = 0.25
_DODGE = 1.05  # top-K agreement: the factor between neighbouring lines' K positions


def _label(k: str) -> str:
    return "no prior" if k == "0" else f"{k} prior token{'s' if k != '1' else ''}"


def _style(position: int) -> dict:
    """The colour, marker, marker size and line style of the `position`-th number of prior tokens."""
    return {"color": f"C{position % 10}", "marker": _MARKERS[position % len(_MARKERS)],
            "linestyle": _LINESTYLES[position % len(_LINESTYLES)], "markersize": _SIZES[min(position, len(_SIZES) - 1)]}


def save_figure(figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> None:
    """Every figure of the project: laid out (within `rect`, leaving room for a figure
    legend), PNG, no timestamp or version (so the same data gives the same bytes), then closed."""
    figure.tight_layout(rect=rect)
    figure.savefig(path, dpi=110, metadata=_PNG_METADATA, format="png")
    plt.close(figure)


def plot_topk_agreement(report: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5.5, 4))
    top_k = report["top_k"]
    by_prior = report["by_prior_tokens"]
    for position, (k, entry) in enumerate(by_prior.items()):
        agreement = [entry["overall"]["topk_agreement"][str(K)] for K in top_k]
        # Each line a little to the side (on the log axis), so lines with equal values stay apart.
        dodge = _DODGE ** (position - (len(by_prior) - 1) / 2)
        axis.plot([K * dodge for K in top_k], agreement, label=_label(k), markerfacecolor="none", markeredgewidth=1.5,
                  **_style(position))
    axis.set_xscale("log")
    axis.set_xticks(top_k, [str(K) for K in top_k])
    axis.minorticks_off()
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("K")
    axis.set_ylabel("share of steps: SFT token in foundation top-K")
    axis.set_title("Top-K agreement of the foundation with the SFT model")
    axis.legend(title="foundation after")
    save_figure(figure, path)


def plot_selected_token_probability(report: dict, path: Path) -> None:
    names = [("p_sft_own", "SFT: its own token"), ("p_lm_own", "foundation: its own token"),
             ("p_lm_of_sft", "foundation: SFT's token")]
    priors = list(report["by_prior_tokens"])
    figure, axes = plt.subplots(1, len(names), figsize=(11, 4.4), sharey=True)
    mean_style = {"marker": "^", "markerfacecolor": "forestgreen", "markeredgecolor": "forestgreen", "markersize": 7}
    median_style = {"color": "darkorange", "linewidth": 2.5}
    for axis, (name, title) in zip(axes, names):
        samples = [
            [v for example in report["by_prior_tokens"][k]["examples"] for v in example["steps"][name] if v is not None]
            for k in priors
        ]
        parts = axis.boxplot([s if s else [float("nan")] for s in samples], showmeans=True, meanprops=mean_style,
                             medianprops=median_style)
        for median in parts["medians"]:  # a median of 1.0 sits on the box's edge: keep it on top, unclipped
            median.set(zorder=4, clip_on=False)
        axis.set_xticks(range(1, len(priors) + 1), [f"{_label(k)}\n{len(s)} tokens" for k, s in zip(priors, samples)])
        axis.set_title(title, fontsize=10)
        axis.set_ylim(-0.02, 1.04)
    axes[0].set_ylabel("probability of the selected token")
    handles = [Line2D([], [], **median_style, label="median"),
               Line2D([], [], linestyle="none", **mean_style, label="mean"),
               Patch(facecolor="white", edgecolor="black", label="box: middle half (25th–75th percentile)"),
               Line2D([], [], color="black", label="whiskers: furthest within 1.5 box heights"),
               Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="none", label="beyond: single tokens")]
    figure.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    figure.suptitle("Probability of the selected token at each step, by number of prior tokens")
    save_figure(figure, path, rect=(0, 0.06, 1, 1))


def step_minimum(report: dict) -> int:
    """The fewest examples a step's mean is drawn solid for: MIN_STEP_EXAMPLES, or
    MIN_STEP_SHARE of the most examples any step has, if more."""
    most = max((s["examples"] for entry in report["by_prior_tokens"].values() for s in entry["per_step"]), default=0)
    return max(MIN_STEP_EXAMPLES, math.ceil(MIN_STEP_SHARE * most))


def _by_step(value_axes, count_axes, report: dict, value_of) -> int:
    """One line per number of prior tokens on each of `value_axes` (value_of(summary,
    column) -> y), faded where a step has fewer than `step_minimum` examples, and the
    examples per step on each of `count_axes`; returns the minimum."""
    minimum = step_minimum(report)
    for position, (k, entry) in enumerate(report["by_prior_tokens"].items()):
        style = _style(position)
        steps = [s["step"] for s in entry["per_step"]]
        counts = [s["examples"] for s in entry["per_step"]]
        enough = [c >= minimum for c in counts]
        for column, axis in enumerate(value_axes):
            values = [value_of(s, column) for s in entry["per_step"]]
            values = [float("nan") if v is None else v for v in values]  # null: no mean
            axis.plot(steps, values, alpha=_FADED, **style | {"markersize": 3})
            axis.plot([t for t, ok in zip(steps, enough) if ok], [v for v, ok in zip(values, enough) if ok],
                      label=_label(k), **style | {"markersize": 4})
        for axis in count_axes:
            axis.step(steps, counts, where="mid", color=style["color"], linestyle=style["linestyle"])
    for axis in count_axes:
        axis.axhline(minimum, color="grey", linewidth=0.8, linestyle=":")
        axis.text(1.0, minimum, f" min {minimum}", transform=axis.get_yaxis_transform(), fontsize=7, color="grey",
                  va="bottom", ha="right")
        axis.set_ylim(bottom=0)
        axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("decoding step after the prior")
        axis.set_title("examples reaching the step", fontsize=8, loc="left")
    count_axes[0].set_ylabel("examples")
    return minimum


def _faded_handle(minimum: int) -> Line2D:
    return Line2D([], [], color="grey", alpha=_FADED + 0.15, marker="o", markersize=3,
                  label=f"faded: fewer than {minimum} examples reach the step")


_ABOVE_LEGEND = (0, 0.07, 1, 1)  # the part of a figure above a legend along its bottom


def _legend_below(figure, axis, minimum: int) -> None:
    """The lines of `axis` and the faded mark, in one row along the figure's bottom (a
    legend inside a panel would hide data)."""
    handles = axis.get_legend_handles_labels()[0] + [_faded_handle(minimum)]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)


def _by_step_figure(columns: int, width: float):
    """(figure, value axes, count axes): a row of value panels over a row of examples-per-step panels."""
    figure, axes = plt.subplots(2, columns, figsize=(width, 5.2), sharex="col", gridspec_kw={"height_ratios": (3, 1)})
    return figure, list(axes[0]), list(axes[1])


def plot_divergence_by_step(report: dict, path: Path) -> None:
    figure, value_axes, count_axes = _by_step_figure(2, 10)
    names = [("kl_sft_lm", "KL(p_SFT || p_LM)"), ("js", "Jensen-Shannon divergence")]
    minimum = _by_step(value_axes, count_axes, report, lambda summary, column: summary[names[column][0]])
    for axis, (_, title) in zip(value_axes, names):
        axis.set_title(title, fontsize=10)
        axis.set_ylim(bottom=0)
    value_axes[0].set_ylabel("mean over examples (nats)")
    _legend_below(figure, value_axes[0], minimum)
    figure.suptitle("Divergence of the foundation from the SFT model along the decoding steps")
    save_figure(figure, path, rect=_ABOVE_LEGEND)


def plot_token_shift_by_step(report: dict, path: Path) -> None:
    """Share of unshifted, marginal and shifted positions by step."""
    titles = [("unshifted", "unshifted: SFT token is the foundation's top 1"),
              ("marginal", "marginal: SFT token is its 2nd or 3rd"),
              ("shifted", "shifted: SFT token beyond its top 3")]
    figure, value_axes, count_axes = _by_step_figure(3, 13)
    minimum = _by_step(value_axes, count_axes, report, lambda summary, column: summary["token_shift"][titles[column][0]])
    for axis, (_, title) in zip(value_axes, titles):
        axis.set_ylim(0, 1.04)
        axis.set_title(title, fontsize=10)
    value_axes[0].set_ylabel("share of positions")
    _legend_below(figure, value_axes[0], minimum)
    figure.suptitle("Token distribution shift along the decoding steps")
    save_figure(figure, path, rect=_ABOVE_LEGEND)


PAINTERS = dict(zip(FIGURES, (plot_topk_agreement, plot_selected_token_probability, plot_divergence_by_step,
                              plot_token_shift_by_step)))


def draw_alignment_figures(report: dict, out_dir: Path) -> list[Path]:
    """Writes the figures into `out_dir` and returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in FIGURES]
    for (name, paint), path in zip(PAINTERS.items(), paths):
        paint(report, path)
    return paths
