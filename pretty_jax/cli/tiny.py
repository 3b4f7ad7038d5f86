"""Writes a tiny random-weight HF checkpoint of a supported family (needs torch).

    python -m pretty_jax.tiny --preset=llama --out_dir=/tmp/tiny-llama

--out_dir is owned file by file (see `core.run_dir`): a folder holding other files is
refused, and running again replaces only the files it wrote.
"""

import tempfile
from pathlib import Path

from absl import flags

from pretty_jax.checkpoints import tiny
from pretty_jax.cli import help as cli_help
from pretty_jax.core.run_dir import RunDirectory

_PRESET = flags.DEFINE_enum(
    "preset", "llama", list(tiny.PRESETS), "Which tiny architecture to build."
)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Directory to write the HF checkpoint to.", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random weights.")


HELP = cli_help.Help(
    "python -m pretty_jax.tiny",
    "Writes a tiny random-weight HF checkpoint of a supported family, for tests and trying things out "
    "(needs torch: pip install -e '.[test]').",
    examples=("python -m pretty_jax.tiny --preset=llama --out_dir=/tmp/tiny-llama",),
    required={"out_dir": ""},
)


def main(argv: list[str]) -> None:
    del argv
    output = RunDirectory.open(Path(_OUT_DIR.value), "tiny", "--out_dir")  # owned file by file, like any run's
    try:
        with tempfile.TemporaryDirectory(prefix="pretty_jax-tiny-") as staging:
            output.place_files(tiny.build(_PRESET.value, staging, seed=_SEED.value), ".", move=True)
    finally:
        output.close()
    print(f"wrote tiny {_PRESET.value} checkpoint to {output.path}")

