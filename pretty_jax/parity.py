"""`python -m pretty_jax.parity`: see pretty_jax/cli/parity.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import parity as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
