"""`python -m pretty_jax.data`: see pretty_jax/cli/data.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import data as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
