"""`python -m pretty_jax.tiny`: see pretty_jax/cli/tiny.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import tiny as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
