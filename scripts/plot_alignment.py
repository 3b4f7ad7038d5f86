"""Redraws the alignment figures from an alignment.json alone.

    python scripts/plot_alignment.py --alignment_json=OUT/alignment.json [--out_dir=DIR]
"""

from pathlib import Path

from absl import flags

from pretty_jax.alignment.plots import draw_alignment_figures
from pretty_jax.alignment.summary import read_report
from pretty_jax.cli import common

_ALIGNMENT_JSON = flags.DEFINE_string("alignment_json", None, "alignment.json written by run --mode=align.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where to write the PNGs; default: beside the JSON.")


def main(argv: list[str]) -> None:
    del argv
    path = Path(_ALIGNMENT_JSON.value)
    for figure in draw_alignment_figures(read_report(path), Path(_OUT_DIR.value or path.parent)):
        print(f"wrote {figure}")


if __name__ == "__main__":
    common.run(main)
