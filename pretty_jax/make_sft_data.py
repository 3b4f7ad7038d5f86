"""`python -m pretty_jax.make_sft_data`: see pretty_jax/cli/make_sft_data.py (flags) and the README."""

from pretty_jax.cli import common
from pretty_jax.cli import make_sft_data as command

if __name__ == "__main__":
    common.run(command.main, command.HELP)
