"""`python -m pretty_jax.train`: see pretty_jax/cli/train.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import train as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
