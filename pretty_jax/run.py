"""`python -m pretty_jax.run`: see pretty_jax/cli/run.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import run as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
