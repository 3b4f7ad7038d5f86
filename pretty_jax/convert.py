"""`python -m pretty_jax.convert`: see pretty_jax/cli/convert.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import convert as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
