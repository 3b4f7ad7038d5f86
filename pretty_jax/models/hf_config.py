"""Reading architecture settings out of an HF `config.json` dict, with errors that name
the file and the key."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

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


def require(hf: Mapping[str, Any], keys: Sequence[str], where: str) -> Any:
    """The value of the first of `keys` present in `hf` (HF configs use aliases)."""
    for key in keys:
        if hf.get(key) is not None:
            return hf[key]
    raise ConfigError(f"{where}: missing {' or '.join(repr(k) for k in keys)}")


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def special_tokens_from_hf(
    hf: Mapping[str, Any], generation: Mapping[str, Any] | None = None
) -> SpecialTokens:
    generation = generation or {}
    eos: list[int] = []
    for token in _as_ids(hf.get("eos_token_id")) + _as_ids(generation.get("eos_token_id")):
        if token not in eos:
            eos.append(token)
    bos = hf.get("bos_token_id", generation.get("bos_token_id"))
    pad = hf.get("pad_token_id", generation.get("pad_token_id"))
    return SpecialTokens(
        bos_token_id=None if bos is None else int(bos),
        eos_token_ids=tuple(eos),
        pad_token_id=None if pad is None else int(_as_ids(pad)[0]),
    )
