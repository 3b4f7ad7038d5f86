"""Writes a tiny random-weight HF checkpoint of a supported family (needs torch).

    python -m pretty_jax.tiny --preset=llama --out_dir=/tmp/tiny-llama
"""

from absl import flags

from pretty_jax.checkpoints import tiny
from pretty_jax.cli import help as cli_help

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
    path = tiny.build(_PRESET.value, _OUT_DIR.value, seed=_SEED.value)
    print(f"wrote tiny {_PRESET.value} checkpoint to {path}")

