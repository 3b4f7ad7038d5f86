"""The loss, the jitted train step (with gradient accumulation) and the eval step.

Dimension letters: A micro-batches per update, B sequences per micro-batch, T tokens,
V vocabulary.

The loss is the mean cross-entropy over target tokens (loss_mask = 1) of the whole
update. Each micro-batch contributes the gradient of its *sum* of token losses and its
token count; the update divides their totals, so A micro-batches of B sequences give
the update of one batch of A*B sequences, whatever the number of targets in each.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from pretty_jax import models
from pretty_jax.training import lora, params

Batch = dict[str, jax.Array]  # tokens, attention_mask, loss_mask: [A, B, T] int32


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """What an update changes: the step count, the trainable parameters (all of them,
    or the LoRA factors) and the optimiser state."""

    step: jax.Array
    trainable: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class ModelFn:
    """How the trainable (and frozen) parameters become the state the model runs on.

    Full fine-tuning: trainable = every parameter, frozen = {}. LoRA: trainable =
    factors, frozen = the base parameters, merged before each forward. Float32 master
    parameters are cast to `compute_dtype` for the forward; logits stay float32.
    """

    graphdef: nnx.GraphDef
    template: nnx.State
    compute_dtype: jnp.dtype
    lora_targets: Mapping[str, lora.LoraTarget] | None = None
    lora_scale: float = 1.0

    def state(self, trainable: Any, frozen: Mapping[str, jax.Array]) -> nnx.State:
        flat = trainable
        if self.lora_targets is not None:
            flat = lora.merge(frozen, trainable, self.lora_targets, self.lora_scale)
        return params.to_state(self.template, params.cast(flat, self.compute_dtype))


def token_loss_sums(model: ModelFn, trainable: Any, frozen: Any, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(sum of target-token cross-entropies, number of targets) of one micro-batch
    [B, T]: the logits at t - 1 predict token t where loss_mask[t] = 1."""
    tokens_BT = batch["tokens"]
    positions_BT = jnp.broadcast_to(jnp.arange(tokens_BT.shape[1], dtype=jnp.int32), tokens_BT.shape)
    logits_BTV, _ = models.forward(
        model.graphdef, model.state(trainable, frozen), tokens_BT, positions_BT, batch["attention_mask"]
    )
    logprobs_BTV = jax.nn.log_softmax(logits_BTV[:, :-1].astype(jnp.float32), axis=-1)
    target_logprob_BT = jnp.take_along_axis(logprobs_BTV, tokens_BT[:, 1:, None], axis=-1)[..., 0]
    weights_BT = batch["loss_mask"][:, 1:].astype(jnp.float32)
    return -jnp.sum(target_logprob_BT * weights_BT), jnp.sum(weights_BT)


def _accumulated_gradients(model: ModelFn, trainable: Any, frozen: Any, batch_ABT: Batch):
    """Sums of (loss, targets, gradients) over the A micro-batches, one at a time."""
    grad_fn = jax.value_and_grad(
        lambda t, micro: token_loss_sums(model, t, frozen, micro), has_aux=True
    )

    def accumulate(carry, micro_BT):
        loss_sum, count, grads = carry
        (loss, n), g = grad_fn(trainable, micro_BT)
        return (loss_sum + loss, count + n, jax.tree.map(jnp.add, grads, g)), None

    zeros = (jnp.float32(0), jnp.float32(0), jax.tree.map(jnp.zeros_like, trainable))
    (loss_sum, count, grads), _ = jax.lax.scan(accumulate, zeros, batch_ABT)
    return loss_sum, count, grads


def make_train_step(
    model: ModelFn, optimizer: optax.GradientTransformation
) -> Callable[[TrainState, Any, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """`step(state, frozen, batch [A, B, T]) -> (new state, metrics)`, jitted; the old
    state is donated."""

    def step(state: TrainState, frozen: Any, batch_ABT: Batch):
        loss_sum, count, grad_sums = _accumulated_gradients(model, state.trainable, frozen, batch_ABT)
        denominator = jnp.maximum(count, 1.0)
        grads = jax.tree.map(lambda g: g / denominator, grad_sums)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.trainable)
        new_state = TrainState(state.step + 1, optax.apply_updates(state.trainable, updates), opt_state)
        metrics = {"loss": loss_sum / denominator, "grad_norm": optax.tree.norm(grads), "target_tokens": count}
        return new_state, metrics

    return jax.jit(step, donate_argnums=0)


def make_eval_step(model: ModelFn) -> Callable[[Any, Any, Batch], tuple[jax.Array, jax.Array]]:
    """`eval(trainable, frozen, batch [1, B, T]) -> (loss sum, targets)`, jitted."""

    def evaluate(trainable, frozen, batch_1BT):
        return token_loss_sums(model, trainable, frozen, jax.tree.map(lambda x: x[0], batch_1BT))

    return jax.jit(evaluate)


def initial_state(trainable: Any, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(jnp.zeros((), jnp.int32), trainable, jax.jit(optimizer.init)(trainable))
