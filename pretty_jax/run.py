"""`python -m pretty_jax.run`: see pretty_jax/cli/run.py, its flags in
pretty_jax/cli/run_flags.py, and the README."""

from pretty_jax.cli import common, run_flags
from pretty_jax.cli import run as command

if __name__ == "__main__":
    common.run(command.main, run_flags.HELP)
