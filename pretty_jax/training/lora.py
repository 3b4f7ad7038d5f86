"""LoRA (Hu et al. 2021) for every family, without touching model code.

A targeted weight W is trained as W + (alpha / r) * B @ A, with A [r, in] and B
[out, r] in the layout of the weight's HF matrix (torch's nn.Linear [out, in], the
layout PEFT uses), mapped to our layout by the checkpoint layout's own transform. B
starts at zero, so training starts from the base model exactly. The factors are a
separate pytree, the only thing the optimiser sees; the model runs on merged weights,
and the export writes merged weights.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from pretty_jax.core.errors import UserError
from pretty_jax.models.conversion import CheckpointLayout, Transform

Factors = dict[str, dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class LoraTarget:
    """One adapted weight: its HF matrix shape (out, in) and how that maps to ours."""

    path: str
    our_shape: tuple[int, ...]
    hf_shape: tuple[int, int]
    transform: Transform


def find_targets(
    layout: CheckpointLayout, our_shapes: Mapping[str, tuple[int, ...]], patterns: Sequence[str]
) -> dict[str, LoraTarget]:
    """The parameters whose paths match any of `patterns` (`re.search`). Each must be
    a matrix in the HF checkpoint."""
    targets = {}
    for path, shape in our_shapes.items():
        if not any(re.search(pattern, path) for pattern in patterns):
            continue
        transform = layout.tensors[path].transform
        hf_shape = tuple(transform.hf_shape(tuple(shape)))
        if len(hf_shape) != 2:
            raise UserError(
                f"--lora_targets matches {path}, which is not a matrix (HF shape {hf_shape}); "
                "narrow the regexes"
            )
        targets[path] = LoraTarget(path, tuple(shape), hf_shape, transform)
    if not targets:
        examples = ", ".join(sorted(our_shapes)[:12])
        raise UserError(
            f"--lora_targets={','.join(patterns)} matches no parameter; paths look like: {examples}, ..."
        )
    return targets


def init_factors(targets: Mapping[str, LoraTarget], rank: int, seed: int) -> Factors:
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's Kaiming-uniform), B = 0."""
    factors = {}
    for index, (path, target) in enumerate(sorted(targets.items())):
        out_features, in_features = target.hf_shape
        key = jax.random.fold_in(jax.random.key(seed), index)
        bound = 1.0 / math.sqrt(in_features)
        factors[path] = {
            "a": jax.random.uniform(key, (rank, in_features), jnp.float32, -bound, bound),
            "b": jnp.zeros((out_features, rank), jnp.float32),
        }
    return factors


def delta(target: LoraTarget, factors: Mapping[str, jax.Array], scale: float) -> jax.Array:
    """scale * B @ A in our layout (float32)."""
    delta_hf = scale * jnp.matmul(factors["b"], factors["a"], preferred_element_type=jnp.float32)
    return target.transform.to_ours(delta_hf, target.our_shape)


def merge(
    base: Mapping[str, jax.Array],
    factors: Mapping[str, Mapping[str, jax.Array]],
    targets: Mapping[str, LoraTarget],
    scale: float,
) -> dict[str, jax.Array]:
    """The base parameters with every target's delta added (in float32, then cast back
    to the base's dtype)."""
    merged = dict(base)
    for path, target_factors in factors.items():
        weight = base[path]
        merged[path] = (weight.astype(jnp.float32) + delta(targets[path], target_factors, scale)).astype(weight.dtype)
    return merged
