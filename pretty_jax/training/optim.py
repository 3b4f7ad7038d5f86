"""The optimiser: AdamW after clipping by global norm, with linear warmup then cosine
decay. Weight decay applies to matrices (ndim >= 2), not to norms and biases."""

from __future__ import annotations

import jax
import optax

from pretty_jax.training.settings import TrainSettings


def learning_rate_schedule(settings: TrainSettings) -> optax.Schedule:
    """0 -> learning_rate over warmup_steps, then cosine down to end_learning_rate at
    train_steps."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        decay_steps=settings.train_steps,
        end_value=settings.end_learning_rate,
    )


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    adamw = optax.adamw(
        learning_rate_schedule(settings),
        b1=settings.adam_b1,
        b2=settings.adam_b2,
        eps=settings.adam_eps,
        weight_decay=settings.weight_decay,
        mask=_decay_mask,
    )
    if settings.max_grad_norm <= 0:
        return adamw
    return optax.chain(optax.clip_by_global_norm(settings.max_grad_norm), adamw)
