"""`python -m pretty_jax.generate`: see pretty_jax/cli/generate.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import generate as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
