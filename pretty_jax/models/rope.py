"""Rotary position embeddings (HF's rotate-half layout) and their scaling variants.

Supported `rope_type`s: `default`, `linear` (position interpolation) and `llama3`
(LLaMA 3.1 frequency-band scaling). The inverse frequencies are computed once on the
host in float32, exactly as transformers computes them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from pretty_jax.core.errors import ConfigError
from pretty_jax.models.hf_config import number, size

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """RoPE settings. `factor` is used by `linear` and `llama3`; the remaining fields by
    `llama3` only."""

    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


def rope_config_from_hf(hf: Mapping[str, Any], where: str) -> RopeConfig:
    """Reads RoPE settings from an HF config dict, old (`rope_theta` + `rope_scaling`)
    or new (`rope_parameters`) style. `where` names the file for error messages."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    theta = number(params if params.get("rope_theta") is not None else hf, ["rope_theta"], where,
                   default=10000.0, positive=True)
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ConfigError(
            f"{where}: rope type {rope_type!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_ROPE_TYPES)}"
        )
    if rope_type == "default":
        return RopeConfig(theta=theta)
    if "factor" not in params:
        raise ConfigError(f"{where}: rope type {rope_type!r} needs a 'factor'")
    if rope_type == "linear":
        return RopeConfig(theta=theta, rope_type="linear", factor=number(params, ["factor"], where, positive=True))
    missing = [k for k in ("low_freq_factor", "high_freq_factor") if k not in params]
    if missing:
        raise ConfigError(f"{where}: rope type 'llama3' needs {', '.join(missing)}")
    original_key = "original_max_position_embeddings"
    original = size(params, [original_key], where) if params.get(original_key) is not None else size(
        hf, ["max_position_embeddings"], where, default=8192)
    return RopeConfig(
        theta=theta,
        rope_type="llama3",
        factor=number(params, ["factor"], where, positive=True),
        low_freq_factor=number(params, ["low_freq_factor"], where, positive=True),
        high_freq_factor=number(params, ["high_freq_factor"], where, positive=True),
        original_max_position_embeddings=original,
    )


@functools.lru_cache(maxsize=None)
def inverse_frequencies(rope: RopeConfig, head_dim: int) -> np.ndarray:
    """[H // 2] float32 inverse frequencies, scaled as `rope.rope_type` says."""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
    inv_freq = (1.0 / (rope.theta**exponents)).astype(np.float32)
    if rope.rope_type == "linear":
        return (inv_freq / np.float32(rope.factor)).astype(np.float32)
    if rope.rope_type == "llama3":
        return _llama3_scaled(inv_freq, rope)
    return inv_freq


def _llama3_scaled(inv_freq: np.ndarray, rope: RopeConfig) -> np.ndarray:
    """LLaMA 3.1: long wavelengths divided by `factor`, short ones kept, the band in
    between interpolated smoothly."""
    old_len = rope.original_max_position_embeddings
    low_freq_wavelen = old_len / rope.low_freq_factor
    high_freq_wavelen = old_len / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq)
    smooth = (old_len / wavelen - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def apply_rope(x_BTNH: jax.Array, positions_BT: jax.Array, inv_freq: np.ndarray) -> jax.Array:
    """Rotates query or key vectors by their positions (rotate-half convention)."""
    angles_BTh = positions_BT.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)
    angles_BTH = jnp.concatenate([angles_BTh, angles_BTh], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles_BTH), jnp.sin(angles_BTH)
    x = x_BTNH.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rotated * sin).astype(x_BTNH.dtype)
