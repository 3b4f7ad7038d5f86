"""The README's first command: PreTTY on the built-in model organism.

`run --mode=demo` builds (once, into --organism_dir) a small bilingual world, a LLaMA-
family foundation model pretrained on it and an SFT model fine-tuned on its
instructions (see pretty_jax/organism), points the experiment flags at them and prints
what the paper found, in miniature: the foundation model answers in the wrong
language, and one prior token from the SFT model fixes most of that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pretty_jax.experiments.significance_report import ALPHA, MARKS, difference_marks, half_width
from pretty_jax.organism.build import Organism, ensure_organism, register_varic

__all__ = ["ensure_organism", "experiment_settings", "planned_organism", "summary"]

PAIR = "eng-vrc"


def planned_organism(root: Path) -> Organism:
    """Where the organism in `root` is (or will be built), without building it."""
    register_varic()
    return Organism(root)


def experiment_settings(organism: Organism) -> dict[str, object]:
    """The `experiments.Settings` fields that point the experiment at the organism
    (they take the place of the flagfile's)."""
    return {
        "task": "translation",
        "data": str(organism.flores),
        "split": "test",
        "source_lang": "eng",
        "target_langs": ("vrc",),
        "foundation": str(organism.foundation),
        "sft": str(organism.sft),
        "dictionary": str(organism.dictionary),
    }


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"


def summary(results: dict, phases: Sequence[tuple[str, float]], total_seconds: float, output_dir: Path) -> str:
    """A short, readable table of the demo's results."""
    pair = results["pairs"][PAIR]
    systems = pair["systems"]
    sft_chrf = systems["sft"]["metrics"]["chrf"]
    width = max([42] + [len(system["label"]) for system in systems.values()])
    lines = [
        "",
        f"PreTTY demo: English -> Varic (an invented language), {pair['examples']} held-out sentences",
        "",
        f"  {'system':<{width}} {'chrF++':>13} {'BLEU':>6} {'in Varic':>9} {'% of SFT':>9}",
    ]
    for key, system in systems.items():
        metrics = system["metrics"]
        chrf = f"{metrics['chrf']:.1f}"
        if half_width(pair, key, "chrf") is not None:
            chrf += f" ±{half_width(pair, key, 'chrf'):.1f}{difference_marks(pair, key, 'chrf'):<2}"
        lines.append(
            f"  {system['label']:<{width}} {chrf:>13} {metrics['bleu']:6.1f} "
            f"{100 * metrics['target_language_rate']:8.0f}% {100 * metrics['chrf'] / sft_chrf:8.0f}%"
        )
    if pair.get("significance"):
        tested = pair["significance"]
        lines += ["", f"  ±: 95% interval half-width, paired bootstrap over the sentences ({tested['resamples']} "
                      f"resamples, seed {tested['seed']});", "  " + "; ".join(
                      f"{mark}: differs from {name} at p < {ALPHA}" for b, (mark, name) in MARKS.items()
                      if b in tested["p_values"])]
    if pair.get("alignment"):
        lines += ["", "  foundation vs SFT next-token distributions along the foundation's own output:",
                  f"  {'prior tokens':>14} {'top-1 agreement':>16} {'KL(SFT||LM)':>12}"]
        for k, overall in pair["alignment"].items():
            lines.append(f"  {k:>14} {overall['topk_agreement']['1']:16.3f} {overall['kl_sft_lm']:12.3f}")
    lines += [
        "",
        "  " + " | ".join(f"{name} {_duration(seconds)}" for name, seconds in phases) + f" | total {_duration(total_seconds)}",
        f"  report: {output_dir / 'report.md'}" + _figures(output_dir),
    ]
    return "\n".join(lines)


def _figures(output_dir: Path) -> str:
    """The figures the run wrote (alignment figures with --align, the prior sweep's with
    --sweep_prior_token_counts), as the summary names them; empty when there are none."""
    shown = [f"{output_dir / PAIR}/*.png"] if any((output_dir / PAIR).glob("*.png")) else []
    shown += [str(output_dir / "prior_sweep.png")] if (output_dir / "prior_sweep.png").exists() else []
    return f"   figures: {', '.join(shown)}" if shown else ""
