"""Model families, keyed by the HF `model_type` they accept.

A family is an architecture config built from `config.json`, an NNX module and the
layout of its HF checkpoint. `forward` runs any family functionally over
`(graphdef, params)`, so two checkpoints of one architecture (a foundation model and its
SFT model) share one compiled program.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from pretty_jax.core.errors import ConfigError
from pretty_jax.models import bloom, gemma3, llama
from pretty_jax.models.conversion import CheckpointLayout
from pretty_jax.models.layers import KVCache
from pretty_jax.models.model import Graph, Model  # noqa: F401

ModelConfig = llama.LlamaConfig | bloom.BloomConfig | gemma3.Gemma3Config


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    config_from_hf: Callable[..., ModelConfig]
    module: type[nnx.Module]
    checkpoint_layout: Callable[[Any], CheckpointLayout]


_LLAMA = Family("llama", llama.config_from_hf, llama.Llama, llama.checkpoint_layout)
_BLOOM = Family("bloom", bloom.config_from_hf, bloom.Bloom, bloom.checkpoint_layout)
_GEMMA3 = Family("gemma3", gemma3.config_from_hf, gemma3.Gemma3, gemma3.checkpoint_layout)
FAMILIES = {
    **{model_type: _LLAMA for model_type in llama.MODEL_TYPES},
    **{model_type: _BLOOM for model_type in bloom.MODEL_TYPES},
    **{model_type: _GEMMA3 for model_type in gemma3.MODEL_TYPES},
}
SUPPORTED_MODEL_TYPES = tuple(sorted(FAMILIES))


def family_for(hf_config: Mapping[str, Any], where: str) -> Family:
    model_type = hf_config.get("model_type")
    if model_type not in FAMILIES:
        raise ConfigError(
            f"{where}: model_type {model_type!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return FAMILIES[model_type]


def family_of(config: ModelConfig) -> Family:
    return FAMILIES[config.model_type]


def abstract_model(config: ModelConfig, dtype: jnp.dtype) -> tuple[nnx.GraphDef, nnx.State]:
    """The model's graph and parameter shapes/dtypes, without allocating memory."""
    module = family_of(config).module
    model = nnx.eval_shape(lambda: module(config, dtype=dtype, rngs=nnx.Rngs(0)))
    return nnx.split(model)


def init_model(config: ModelConfig, dtype: jnp.dtype, seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    """A randomly initialised model (for training from scratch and benchmarks)."""
    model = family_of(config).module(config, dtype=dtype, rngs=nnx.Rngs(seed))
    return nnx.split(model)


def forward(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    tokens_BT: jax.Array,
    positions_BT: jax.Array,
    attention_mask_BT: jax.Array,
    cache: KVCache | None = None,
    *,
    last_only: bool = False,
) -> tuple[jax.Array, KVCache | None]:
    """Logits [B, T, V] float32 and the updated cache; a pure function of its inputs.
    With `last_only`, logits [B, V] of the last position only (rows are left-padded, so
    it is every row's last token): [B, T, V] is never formed."""
    model = nnx.merge(graphdef, params)
    if not last_only:
        return model(tokens_BT, positions_BT, attention_mask_BT, cache)
    h_BTD, cache = model.hidden_states(tokens_BT, positions_BT, attention_mask_BT, cache)
    return model.logits(h_BTD[:, -1:])[:, 0], cache


def new_cache(config: ModelConfig, batch: int, max_len: int, dtype: jnp.dtype) -> KVCache:
    """An empty KV cache of `max_len` slots for `batch` rows."""
    return KVCache.empty(
        batch, max_len, config.num_layers, config.num_kv_heads, config.head_dim, dtype
    )
