"""Lengths a model can decode, checked before anything is allocated: against the
model's trained positions, and against the machine's memory by an estimate of the KV
cache (a run of 10^8 new tokens would otherwise ask the allocator for tens of GB and
die with an out-of-memory traceback)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from pretty_jax.core.errors import UserError

# Where a container's memory limit is (cgroup v2, then v1).
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def kv_cache_bytes(config, rows: int, length: int, dtype) -> int:
    """Bytes of a KV cache of `length` slots for `rows` rows: keys and values [rows,
    length, K, H] per layer (as `models.new_cache` allocates them)."""
    per_slot = 2 * config.num_layers * config.num_kv_heads * config.head_dim * np.dtype(dtype).itemsize
    return rows * length * per_slot


def machine_memory() -> tuple[int, str]:
    """(bytes, what they are) the KV cache can live in: the local accelerators' memory
    together, or on CPU the host's memory (a container's limit when lower)."""
    devices = jax.local_devices()
    if devices[0].platform != "cpu":
        limits = [(device.memory_stats() or {}).get("bytes_limit") for device in devices]
        if all(limits):
            return sum(limits), f"{len(devices)} {devices[0].platform.upper()} device(s)"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            limit = int(path.read_text().strip())
        except (OSError, ValueError):  # absent, or "max" (no limit)
            continue
        total = min(total, limit)
    return total, "host memory"


def check_lengths(config, max_new_tokens: int, max_len: int | None, rows: int, dtype, where: str) -> None:
    """Refuses, before a model is loaded or a cache allocated, lengths that cannot run:

    - a KV cache for `rows` rows of at least `max_new_tokens` + 1 slots (one prompt
      token) larger than the machine's memory (`machine_memory`);
    - `max_len` beyond the model's `max_position_embeddings` (`where` names the
      config.json that says so; ALiBi models have no such limit);
    - `max_new_tokens` that leaves no room for a prompt within `max_len` (by default
      the model's positions).

    Messages start with the setting's name (`max_new_tokens=...`), as library errors do.
    """
    needed = kv_cache_bytes(config, rows, max_new_tokens + 1, dtype)
    available, kind = machine_memory()
    if needed > available:
        raise UserError(
            f"max_new_tokens={max_new_tokens}: the KV cache alone would need at least {needed / 1e9:.1f} GB "
            f"({rows} rows x {max_new_tokens + 1} positions x {config.num_layers} layers), more than this "
            f"machine's {available / 1e9:.1f} GB ({kind}); lower max_new_tokens or batch_size"
        )
    positions = getattr(config, "max_position_embeddings", None)
    if max_len is not None and positions is not None and max_len > positions:
        raise UserError(
            f"max_len={max_len} exceeds the {positions} positions the model was trained for "
            f"(max_position_embeddings in {where}); lower max_len to at most {positions}"
        )
    limit = max_len or positions
    if limit is not None and max_new_tokens >= limit:
        raise UserError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in max_len={limit}"
            + ("" if max_len else f" (the model's max_position_embeddings, {where})")
        )
