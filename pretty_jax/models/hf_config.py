"""Reading architecture settings out of an HF `config.json` dict, with errors that name
the file and the key."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

from pretty_jax.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """Token ids the decode loop and the tokenizer plumbing need.

    eos_token_ids: every id that ends generation (config.json and
      generation_config.json together, in that order, without repeats).
    """

    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None


@dataclasses.dataclass(frozen=True)
class GroupedQueryConfig:
    """What the LLaMA-family and Gemma 3 architectures share: a decoder of `num_layers`
    blocks of grouped-query attention (`num_heads` query heads of `head_dim` sharing
    `num_kv_heads` key/value heads) and a gated MLP, RMSNorm, and per layer the
    sliding-window size or None for full attention (`layer_windows`)."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    layer_windows: tuple[int | None, ...]
    special_tokens: SpecialTokens


# `default` of `size` and `number` when the key must be present.
REQUIRED = object()


def _lookup(hf: Mapping[str, Any], keys: Sequence[str], where: str, default: Any) -> tuple[str, Any]:
    """(key, value) of the first of `keys` set in `hf`, else (first key, `default`)."""
    for key in keys:
        if hf.get(key) is not None:
            return key, hf[key]
    if default is REQUIRED:
        raise ConfigError(f"{where}: missing {' or '.join(repr(k) for k in keys)}")
    return keys[0], default


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def size(hf: Mapping[str, Any], keys: Sequence[str], where: str, default: Any = REQUIRED, minimum: int = 1) -> int:
    """A count or length (layers, heads, widths, positions, a window) from the first of
    `keys` set in `hf`, else `default`: a whole number >= `minimum`, or a ConfigError
    naming the file and key (a zero or fractional size would build a model that
    computes nothing, or fail deep inside JAX)."""
    key, value = _lookup(hf, keys, where, default)
    if not _is_number(value) or not math.isfinite(value) or value != int(value):
        raise ConfigError(f"{where}: {key}={value!r} is not a whole number; fix it in the file")
    if value < minimum:
        raise ConfigError(f"{where}: {key}={int(value)} must be >= {minimum}; fix it in the file")
    return int(value)


def number(hf: Mapping[str, Any], keys: Sequence[str], where: str, default: Any = REQUIRED,
           positive: bool = False) -> float:
    """A real setting (an epsilon, a RoPE base or factor, a scale) from the first of
    `keys` set in `hf`, else `default`: finite, and > 0 if `positive` else >= 0, or a
    ConfigError naming the file and key. JSON readers accept NaN and Infinity, and one
    NaN here turns every logit into NaN."""
    key, value = _lookup(hf, keys, where, default)
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key}={value!r} is not a finite number; fix it in the file")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}: {key}={value!r} must be {'> 0' if positive else '>= 0'}; fix it in the file")
    return float(value)


def _as_ids(value: Any, key: str, where: str) -> list[int]:
    if value is None:
        return []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return [size({key: v}, [key], where, minimum=0) for v in values]


def special_tokens_from_hf(
    hf: Mapping[str, Any], generation: Mapping[str, Any] | None = None, where: str = "config.json"
) -> SpecialTokens:
    generation = generation or {}
    eos: list[int] = []
    ids = _as_ids(hf.get("eos_token_id"), "eos_token_id", where)
    ids += _as_ids(generation.get("eos_token_id"), "eos_token_id", f"generation_config.json beside {where}")
    for token in ids:
        if token not in eos:
            eos.append(token)
    bos = hf.get("bos_token_id", generation.get("bos_token_id"))
    pad = _as_ids(hf.get("pad_token_id", generation.get("pad_token_id")), "pad_token_id", where)
    return SpecialTokens(
        bos_token_id=None if bos is None else _as_ids(bos, "bos_token_id", where)[0],
        eos_token_ids=tuple(eos),
        pad_token_id=pad[0] if pad else None,
    )


def attention_heads(hf: Mapping[str, Any], where: str, kv_default: Any = REQUIRED) -> tuple[int, int]:
    """(query heads, key/value heads): `num_attention_heads`, a multiple of
    `num_key_value_heads` (`kv_default` when that is absent)."""
    num_heads = size(hf, ["num_attention_heads"], where)
    num_kv_heads = size(hf, ["num_key_value_heads"], where, default=num_heads if kv_default is None else kv_default)
    if num_heads % num_kv_heads:
        raise ConfigError(
            f"{where}: num_attention_heads={num_heads} is not a multiple of "
            f"num_key_value_heads={num_kv_heads}"
        )
    return num_heads, num_kv_heads


def check_model_type(hf: Mapping[str, Any], model_types: Sequence[str], family: str, where: str) -> str:
    """`hf`'s model_type, one of `model_types`, or a ConfigError saying it is no `family` type."""
    model_type = hf.get("model_type")
    if model_type not in model_types:
        raise ConfigError(f"{where}: model_type {model_type!r} is not a {family} type")
    return model_type


def grouped_query_fields(hf: Mapping[str, Any], where: str, generation: Mapping[str, Any] | None,
                         defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The `GroupedQueryConfig` fields but `model_type` and `layer_windows`, read from the
    (text) config `hf` under their HF keys. `defaults` holds the value of each HF key the
    family lets a config leave out (`num_key_value_heads`: None for as many as the query
    heads); every other key must be there."""

    def read(reader: Callable[..., Any], key: str, **checks: Any) -> Any:
        return reader(hf, [key], where, default=defaults.get(key, REQUIRED), **checks)

    num_heads, num_kv_heads = attention_heads(hf, where, kv_default=defaults.get("num_key_value_heads", REQUIRED))
    return dict(
        vocab_size=read(size, "vocab_size"),
        hidden_size=read(size, "hidden_size"),
        intermediate_size=read(size, "intermediate_size"),
        num_layers=read(size, "num_hidden_layers"),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=read(size, "head_dim"),
        rms_norm_eps=read(number, "rms_norm_eps"),
        max_position_embeddings=read(size, "max_position_embeddings"),
        tie_word_embeddings=bool(_lookup(hf, ["tie_word_embeddings"], where, defaults.get("tie_word_embeddings", REQUIRED))[1]),
        special_tokens=special_tokens_from_hf(hf, generation, where),
    )


def windows_of_layer_types(layer_types: Sequence[str], num_layers: int, window: int | None,
                           where: str) -> tuple[int | None, ...]:
    """Per layer, `window` for a "sliding_attention" layer and None for a
    "full_attention" one; any other type, or a count other than `num_layers`, is refused."""
    if len(layer_types) != num_layers:
        raise ConfigError(f"{where}: {len(layer_types)} layer_types for {num_layers} layers")
    unknown = sorted(set(layer_types) - {"sliding_attention", "full_attention"})
    if unknown:
        raise ConfigError(f"{where}: layer_types {unknown} are not supported")
    return tuple(window if t == "sliding_attention" else None for t in layer_types)
