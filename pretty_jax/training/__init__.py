"""Causal-LM training: pretraining from scratch or fine-tuning (full or LoRA) a
checkpoint, with runs that resume exactly after a kill, exported in HF format.

    from pretty_jax.training import TrainSettings, train
    hf_dir = train(TrainSettings(output_dir=..., train_file=..., init=...))

Modules, one job each: `settings` (what a run is), `data` (files -> sequences ->
batches), `params` (flat parameters <-> model state), `lora`, `optim` (AdamW and its
schedule), `step` (loss, jitted train/eval steps), `train_state` (atomic saves),
`metrics_log` (the loss curve), `model_setup` (the starting model), `trainer` (the loop).
"""

from pretty_jax.training.settings import TrainSettings
from pretty_jax.training.trainer import train

__all__ = ["TrainSettings", "train"]
