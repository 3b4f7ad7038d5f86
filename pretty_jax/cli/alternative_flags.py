"""The flags of the alternative systems: contrastive decoding and proxy tuning
(experiments/alternatives.py)."""

from __future__ import annotations

import dataclasses

from absl import flags

from pretty_jax.core.errors import UserError
from pretty_jax.experiments.alternatives import AlternativeSettings

_CONTRASTIVE = flags.DEFINE_list(
    "contrastive", [], "Contrastive decoding systems to run beside the priors, each its contrastive prompts joined "
    "by '+': source (another example's source), language (the prompt asking for the source language), "
    "source+language. Empty: none.")
_LAMBDA_SOURCE = flags.DEFINE_float(
    "contrastive_lambda_source", 0.1, "Weight lambda of the source contrast: log p(y|x) - lambda log p(y|x').",
    lower_bound=0.0)
_LAMBDA_LANGUAGE = flags.DEFINE_float(
    "contrastive_lambda_language", 0.5, "Weight lambda of the language contrast.", lower_bound=0.0)
_CONTRASTIVE_PRIORS = flags.DEFINE_list(
    "contrastive_priors", ["none"], "Priors each contrastive system is combined with, by their system key "
    "(none, dictionary-1word, sft-1tok, ...); each must be among the run's --priors.")
_CONTRASTIVE_SEED = flags.DEFINE_integer(
    "contrastive_seed", 0, "Seed of which other example gives each example's source contrast.")
_PROXY_BASE = flags.DEFINE_string(
    "proxy_base", None, "Proxy tuning: the small base model (its tokenizer must be the foundation's).")
_PROXY_TUNED = flags.DEFINE_string(
    "proxy_tuned", None, "Proxy tuning: the small tuned model (same tokenizer); with --proxy_base runs "
    "foundation + (tuned - base) logits on every token.")
_PROXY_FIRST_K = flags.DEFINE_list(
    "proxy_first_k", [], "Proxy tuning for the first k generated tokens only, then the foundation alone: "
    "one system per k (e.g. 1,3).")

ORGANISM_PROXY = flags.DEFINE_bool(
    "organism_proxy", False, "--mode=demo: also build the organism's small foundation/SFT pair (first use, a few "
    "minutes) and run proxy tuning with it (--proxy_first_k adds the first-k variants).")


def organism_proxy(foundation: str, sft: str) -> dict[str, AlternativeSettings]:
    """The demo's `alternatives` setting with the organism's small pair as the proxy
    models (with --organism_proxy; else nothing)."""
    if not ORGANISM_PROXY.value:
        return {}
    return {"alternatives": alternatives_from_flags(proxy_base=foundation, proxy_tuned=sft)}


def alternatives_from_flags(**fixed) -> AlternativeSettings:
    try:
        first_k = tuple(int(k) for k in _PROXY_FIRST_K.value)
    except ValueError:
        raise UserError(f"--proxy_first_k={','.join(_PROXY_FIRST_K.value)}: give integers") from None
    return AlternativeSettings(
        contrastive=tuple(_CONTRASTIVE.value), contrastive_lambda_source=_LAMBDA_SOURCE.value,
        contrastive_lambda_language=_LAMBDA_LANGUAGE.value, contrastive_priors=tuple(_CONTRASTIVE_PRIORS.value),
        contrastive_seed=_CONTRASTIVE_SEED.value, proxy_base=_PROXY_BASE.value, proxy_tuned=_PROXY_TUNED.value,
        proxy_first_k=first_k,
    ) if not fixed else dataclasses.replace(alternatives_from_flags(), **fixed)
