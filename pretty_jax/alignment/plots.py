"""The alignment figures (the paper's Figs. 2-4), drawn from an alignment.json report
alone, so `scripts/plot_alignment.py` redraws them byte for byte.

  topk_agreement.png              share of steps whose SFT argmax is in the LM's top-K,
                                  against K, one line per number of prior tokens (Fig. 2)
  selected_token_probability.png  distributions of the probability of the selected
                                  tokens, per number of prior tokens (Fig. 3)
  divergence_by_step.png          KL(p_SFT || p_LM) and JS along the decoding steps (Fig. 4)
  token_shift_by_step.png         share of shifted positions (the SFT token beyond the
                                  foundation's top 3) and of unshifted ones (its top 1)
                                  along the steps, one line per number of prior tokens
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = ("topk_agreement.png", "selected_token_probability.png", "divergence_by_step.png", "token_shift_by_step.png")
# No timestamps or versions in the files: the same report gives the same bytes.
_PNG_METADATA = {"Software": None}


def _label(k: str) -> str:
    return "no prior" if k == "0" else f"{k} prior token{'s' if k != '1' else ''}"


def save_figure(figure, path: Path) -> None:
    """Every figure of the project: laid out, PNG, no timestamp or version (so the same
    data gives the same bytes), then closed."""
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata=_PNG_METADATA, format="png")
    plt.close(figure)


def plot_topk_agreement(report: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(5.5, 4))
    top_k = report["top_k"]
    for k, entry in report["by_prior_tokens"].items():
        agreement = [entry["overall"]["topk_agreement"][str(K)] for K in top_k]
        axis.plot(top_k, agreement, marker="o", label=_label(k))
    axis.set_xscale("log")
    axis.set_xticks(top_k, [str(K) for K in top_k])
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("K")
    axis.set_ylabel("SFT token in foundation top-K")
    axis.set_title("Top-K agreement")
    axis.legend()
    save_figure(figure, path)


def plot_selected_token_probability(report: dict, path: Path) -> None:
    names = [("p_sft_own", "SFT: its own token"), ("p_lm_own", "foundation: its own token"),
             ("p_lm_of_sft", "foundation: SFT's token")]
    priors = list(report["by_prior_tokens"])
    figure, axes = plt.subplots(1, len(names), figsize=(11, 3.8), sharey=True)
    for axis, (name, title) in zip(axes, names):
        samples = [
            [v for example in report["by_prior_tokens"][k]["examples"] for v in example["steps"][name] if v is not None]
            for k in priors
        ]
        axis.boxplot([s if s else [float("nan")] for s in samples], showmeans=True)
        axis.set_xticks(range(1, len(priors) + 1), [_label(k) for k in priors], rotation=20)
        axis.set_title(title)
        axis.set_ylim(0, 1.02)
    axes[0].set_ylabel("probability of the selected token")
    save_figure(figure, path)


def plot_divergence_by_step(report: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, (name, title) in zip(axes, [("kl_sft_lm", "KL(p_SFT || p_LM)"), ("js", "Jensen-Shannon")]):
        for k, entry in report["by_prior_tokens"].items():
            steps = [s["step"] for s in entry["per_step"]]
            values = [float("nan") if s[name] is None else s[name] for s in entry["per_step"]]  # null: no mean
            axis.plot(steps, values, marker=".", label=_label(k))
        axis.set_xlabel("decoding step after the prior")
        axis.set_title(title)
    axes[0].set_ylabel("mean over examples (nats)")
    axes[0].legend()
    save_figure(figure, path)


def plot_token_shift_by_step(report: dict, path: Path) -> None:
    """Share of shifted positions (left) and of unshifted ones (right) by step."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    titles = [("shifted", "shifted: SFT token beyond the foundation's top 3"),
              ("unshifted", "unshifted: SFT token is the foundation's top 1")]
    for axis, (name, title) in zip(axes, titles):
        for k, entry in report["by_prior_tokens"].items():
            steps = [s["step"] for s in entry["per_step"]]
            axis.plot(steps, [s["token_shift"][name] for s in entry["per_step"]], marker=".", label=_label(k))
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("decoding step after the prior")
        axis.set_title(title, fontsize=10)
    axes[0].set_ylabel("share of positions")
    axes[0].legend()
    save_figure(figure, path)


PAINTERS = dict(zip(FIGURES, (plot_topk_agreement, plot_selected_token_probability, plot_divergence_by_step,
                              plot_token_shift_by_step)))


def draw_alignment_figures(report: dict, out_dir: Path) -> list[Path]:
    """Writes the figures into `out_dir` and returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in FIGURES]
    for (name, paint), path in zip(PAINTERS.items(), paths):
        paint(report, path)
    return paths
