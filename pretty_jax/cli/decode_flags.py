"""Flags shared by every entry point that decodes: the batch and the decoding settings
(the mesh and hosts are mesh_flags.py's). Importing this module defines them;
`decode_config_from_flags` reads them."""

from __future__ import annotations

from absl import flags

from pretty_jax.cli.escapes import unescape
from pretty_jax.core.errors import UserError
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.engine.stopping import check_stop_strings
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling

HELP_TITLE = "decoding"  # the group --help lists these flags under

BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 8, "Decoding slots, refilled as examples finish (beam search: rows per batch); a multiple of "
    "--mesh_data.",
    lower_bound=1,
)

MAX_NEW_TOKENS = flags.DEFINE_integer(
    "max_new_tokens", 64,
    "Most tokens of each answer, prior tokens included: an example with a k-token prior generates at most "
    "max_new_tokens - k, so systems with and without priors get the same budget.",
    lower_bound=1,
)
_NUM_BEAMS = flags.DEFINE_integer(
    "num_beams", 1, "Beam search with this many beams (1: greedy or sampling).", lower_bound=1
)
_LENGTH_PENALTY = flags.DEFINE_float(
    "length_penalty", 1.0, "Beam search: finished scores are divided by length ** length_penalty."
)
_EARLY_STOPPING = flags.DEFINE_enum(
    "early_stopping", "false", ["false", "true", "never"],
    "Beam search stopping, as HF: true = once num_beams hypotheses finished; false = HF's "
    "heuristic; never = until no hypothesis can improve.",
)
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Sampling temperature; 0 = greedy decoding.", lower_bound=0.0)
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sampling: keep the k most likely tokens (0 = all).", lower_bound=0)
_TOP_P = flags.DEFINE_float(
    "top_p", 1.0, "Sampling: keep the most likely tokens up to this mass, in (0, 1] (1 = all).",
    lower_bound=0.0, upper_bound=1.0,
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Sampling seed; each example draws from fold_in(seed, example id).", lower_bound=0
)
_STOP_STRINGS = flags.DEFINE_list(
    "stop_strings", [],
    r"Comma-separated strings that end an example's output, with escapes: --stop_strings='\n'.",
)
_MAX_LEN = flags.DEFINE_integer(
    "max_len", None, "Cap on prompt + prior + new tokens; default: the model's max_position_embeddings.",
    lower_bound=2,
)
_OVERFLOW = flags.DEFINE_enum(
    "overflow", "truncate", ["truncate", "error"],
    "Inputs longer than max_len - max_new_tokens: drop prompt tokens from the left (logged), or refuse.",
)


def strategy_from_flags() -> Greedy | Sampling | BeamSearch:
    if _NUM_BEAMS.value > 1 and _TEMPERATURE.value > 0:
        raise UserError("--num_beams > 1 with --temperature > 0: beam sampling is not supported; choose one")
    if _NUM_BEAMS.value > 1:
        early = {"true": True, "false": False, "never": "never"}[_EARLY_STOPPING.value]
        return BeamSearch(_NUM_BEAMS.value, _LENGTH_PENALTY.value, early)
    if _TEMPERATURE.value > 0:
        return Sampling(_TEMPERATURE.value, _TOP_K.value, _TOP_P.value)
    if _TEMPERATURE.value < 0:
        raise UserError(f"--temperature={_TEMPERATURE.value} must be >= 0")
    return Greedy()


def decode_config_from_flags(**overrides) -> DecodeConfig:
    if MAX_NEW_TOKENS.value < 1:
        raise UserError(f"--max_new_tokens={MAX_NEW_TOKENS.value} must be >= 1")
    settings = dict(
        max_new_tokens=MAX_NEW_TOKENS.value,
        strategy=strategy_from_flags(),
        stop_strings=tuple(unescape(s) for s in _STOP_STRINGS.value),
        max_len=_MAX_LEN.value,
        overflow=_OVERFLOW.value,
        seed=_SEED.value,
    )
    config = DecodeConfig(**(settings | overrides))
    check_stop_strings(config.stop_strings)
    return config


flags.register_validator("top_p", lambda value: value > 0, message="--top_p must be in (0, 1]")
