"""Meshes, shardings and multi-host plumbing.

Everything runs as one SPMD program: `jax.jit` over a `Mesh` with axes `data` and
`model` (the modern form of the brief's "pmapped decode loop"). The batch is split on
`data`; with `model` > 1, attention heads, MLP width and the vocabulary are split on
`model` (tensor parallelism), so a 7B model fits cores that cannot hold it whole.
Every parameter declares logical axes (see `models.layers.param`); `AXIS_RULES` maps
them to mesh axes. An axis whose size the mesh axis does not divide is replicated.

Multi-host: every process runs the same program on the same host data; each one
supplies only the shards its own devices hold (`device_batch`), and results are
gathered back to every process (`to_host`).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretty_jax.core.errors import UserError
from pretty_jax.models.layers import KVCache

DATA, MODEL = "data", "model"
AXIS_RULES = {"batch": DATA, "heads": MODEL, "kv_heads": MODEL, "mlp": MODEL, "vocab": MODEL}


def make_mesh(data: int | None = None, model: int = 1) -> Mesh:
    """A (data, model) mesh over all devices of all processes. `data` defaults to
    whatever `model` leaves."""
    devices = jax.devices()
    if model < 1 or len(devices) % model:
        raise UserError(f"model={model} must be a positive divisor of the {len(devices)} devices")
    data = len(devices) // model if data is None else data
    if data * model != len(devices):
        raise UserError(
            f"data={data} x model={model} = {data * model}, "
            f"but there are {len(devices)} devices; their product must equal the device count"
        )
    return Mesh(mesh_utils.create_device_mesh((data, model), devices), (DATA, MODEL))


def partition_spec(mesh: Mesh, shape: Sequence[int], logical_axes: Sequence[str | None]) -> PartitionSpec:
    """Mesh axes for an array with these logical axes; each mesh axis used at most once,
    and only on a dimension it divides."""
    used, spec = set(), []
    for size, axis in zip(shape, logical_axes):
        mesh_axis = AXIS_RULES.get(axis)
        if mesh_axis is None or mesh_axis in used or size % mesh.shape[mesh_axis]:
            spec.append(None)
        else:
            used.add(mesh_axis)
            spec.append(mesh_axis)
    return PartitionSpec(*spec)


def device_array(mesh: Mesh | None, host: np.ndarray, logical_axes: Sequence[str | None]) -> jax.Array:
    """A global array from a host array every process holds in full; each process
    supplies only the shards of its own devices."""
    if mesh is None:
        return jax.device_put(host)
    sharding = NamedSharding(mesh, partition_spec(mesh, host.shape, logical_axes))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def param_placer(mesh: Mesh | None):
    """A `checkpoint.Placer` that shards each parameter by its logical axes."""

    def place(path: str, logical_axes: tuple, array: np.ndarray) -> jax.Array:
        del path
        return device_array(mesh, array, logical_axes)

    return place


def device_batch(mesh: Mesh | None, host: np.ndarray) -> jax.Array:
    """A batch-major host array, split on `data` along its first axis."""
    return device_array(mesh, host, ("batch",) + (None,) * (host.ndim - 1))


def cache_sharding(mesh: Mesh, cache: KVCache) -> KVCache:
    """NamedShardings for a KV cache: rows on `data`, key/value heads on `model`."""
    axes = ("batch", None, None) if cache.keys[0].ndim == 3 else ("batch", "kv_heads", None, None)
    kv = [NamedSharding(mesh, partition_spec(mesh, k.shape, axes)) for k in cache.keys]
    return KVCache(
        keys=tuple(kv),
        values=tuple(kv),
        positions=NamedSharding(mesh, partition_spec(mesh, cache.positions.shape, ("batch", None))),
        end=NamedSharding(mesh, PartitionSpec()),
    )


def constrain_cache(mesh: Mesh | None, cache: KVCache) -> KVCache:
    """Pins the cache layout inside a jitted loop so it never drifts between steps."""
    if mesh is None:
        return cache
    return jax.lax.with_sharding_constraint(cache, cache_sharding(mesh, cache))


def to_host(tree: Any) -> Any:
    """Device arrays -> numpy, gathered from every process when there are several."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def initialize_multihost(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """`jax.distributed.initialize`. On TPU pod slices and most clusters all three are
    detected; elsewhere pass them all. Must run before anything touches a device.
    CPU processes talk through gloo (the setting is ignored by other backends)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def is_main_process() -> bool:
    """Process 0 writes files; the others compute alongside it."""
    return jax.process_index() == 0


def raise_everywhere(error: Exception | None) -> None:
    """Raises `error` on every process when process 0 has one (a check only process 0
    can make, such as its output directory's), instead of leaving the others waiting
    at the next collective."""
    if jax.process_count() > 1:
        failed = bool(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
        if failed and error is None:
            error = UserError("process 0 refused to start (its log says why)")
    if error is not None:
        raise error
