"""The model a run starts from (a checkpoint, or random weights for an HF config) and
how its parameters split into trainable and frozen ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretty_jax import models
from pretty_jax.checkpoints import hf_files, loading
from pretty_jax.checkpoints.export import flat_params
from pretty_jax.engine import parallel
from pretty_jax.models import ModelConfig
from pretty_jax.training import lora, params
from pretty_jax.training.settings import TrainSettings
from pretty_jax.training.step import ModelFn


@dataclasses.dataclass(frozen=True)
class StartingModel:
    """Float32 parameters (flat, placed on the mesh) and what export needs to write
    them back: the HF config dicts."""

    config: ModelConfig
    graphdef: nnx.GraphDef
    template: nnx.State
    params: dict[str, jax.Array]
    hf_config: dict[str, Any]
    generation_config: dict[str, Any]


def architecture(settings: TrainSettings) -> tuple[ModelConfig, dict[str, Any], dict[str, Any]]:
    """The model config, and the HF config.json / generation_config.json dicts it comes
    from (read without loading any weights)."""
    if settings.from_scratch:
        path = Path(settings.model_config)
        hf_config, where = hf_files.read_json(path), str(path)
        return models.family_for(hf_config, where).config_from_hf(hf_config, where), hf_config, {}
    directory = loading.model_directory(settings.init)  # a GGUF file reads as its view
    hf_config, generation = hf_files.read_hf_configs(directory)
    return loading.load_config(directory), hf_config, generation


def load_starting_model(settings: TrainSettings, mesh: Mesh | None) -> StartingModel:
    config, hf_config, generation = architecture(settings)
    if settings.from_scratch:
        graphdef, template, flat = _random_params(config, settings.seed, mesh)
        return StartingModel(config, graphdef, template, flat, hf_config, generation)
    loaded = loading.load_model(settings.init, "float32", place=parallel.param_placer(mesh))
    _, template = models.abstract_model(loaded.config, jnp.float32)
    return StartingModel(loaded.config, loaded.graphdef, template, flat_params(loaded.params), hf_config, generation)


def _random_params(config: ModelConfig, seed: int, mesh: Mesh | None):
    """(graphdef, template, flat params) of a randomly initialised model, made by one
    jitted program straight into their shards."""
    graphdef, template = models.abstract_model(config, jnp.float32)
    shardings = None
    if mesh is not None:
        axes = params.logical_axes(template)
        shardings = {
            path: NamedSharding(mesh, parallel.partition_spec(mesh, shape, axes[path]))
            for path, shape in params.shapes(template).items()
        }
    init = lambda: flat_params(models.init_model(config, jnp.float32, seed)[1])
    return graphdef, template, jax.jit(init, out_shardings=shardings)()


def replicate(mesh: Mesh | None, tree: Any) -> Any:
    """Every array of `tree` whole on every device of the mesh (committed, so that
    jit never mixes placements)."""
    if mesh is None:
        return jax.device_put(tree, jax.devices()[0])
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def on_mesh(mesh: Mesh | None, tree: Any) -> Any:
    """`tree` with the arrays that are not yet spread over the mesh (e.g. the
    optimiser's step counters) replicated on it; the others as they are. A restored
    state is placed like this one, so every array must be where jit expects it."""
    if mesh is None:
        return replicate(None, tree)
    devices = set(mesh.devices.flat)
    spread = lambda x: x if x.sharding.device_set == devices else replicate(mesh, x)
    return jax.tree.map(spread, tree)


def split_trainable(
    settings: TrainSettings, start: StartingModel, mesh: Mesh | None
) -> tuple[ModelFn, Any, dict[str, jax.Array]]:
    """(model function, trainable pytree, frozen parameters)."""
    compute_dtype = loading.parse_dtype(settings.compute_dtype, "--compute_dtype")
    if not settings.lora_rank:
        return ModelFn(start.graphdef, start.template, compute_dtype), start.params, {}
    layout = models.family_of(start.config).checkpoint_layout(start.config)
    shapes = {path: tuple(array.shape) for path, array in start.params.items()}
    targets = lora.find_targets(layout, shapes, settings.lora_targets)
    factors = replicate(mesh, lora.init_factors(targets, settings.lora_rank, settings.seed))
    scale = settings.lora_alpha / settings.lora_rank
    model = ModelFn(start.graphdef, start.template, compute_dtype, targets, scale)
    return model, factors, start.params


def merged_params(model: ModelFn, trainable: Any, frozen: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The full parameters: the trainable ones, or the base with LoRA merged in."""
    if model.lora_targets is None:
        return trainable
    merge = lambda base, factors: lora.merge(base, factors, model.lora_targets, model.lora_scale)
    return jax.jit(merge)(frozen, trainable)
