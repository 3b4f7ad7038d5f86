"""The flags of `python -m pretty_jax.train`: one per `TrainSettings` field, of the
field's name, plus the mesh. Importing this module defines them; `settings_from_flags`
and `mesh_from_flags` read them.

The mesh flags are mesh_flags.py's (the mesh is not a setting of the run: a resumed
run may use other devices).
"""

import dataclasses

from absl import flags

from pretty_jax.training.settings import (
    COMPUTE_DTYPES,
    DATA_MODES,
    DEFAULT_LORA_TARGETS,
    TrainSettings,
)

HELP_TITLE = "training"  # the group --help lists these flags under

_DEFAULTS = TrainSettings(output_dir="", train_file="")

# One flag per TrainSettings field, of the field's name (read back by settings_from_flags).
flags.DEFINE_string(
    "output_dir", None, "Run directory: metrics.jsonl, train_state/ (resume point) and hf/ (the model).", required=True
)
flags.DEFINE_string(
    "train_file", None,
    "Training data: pretrain = a .txt corpus (one document per line) or .jsonl with a 'text' "
    "field; sft = .jsonl with 'prompt' and 'response' fields.",
    required=True,
)
flags.DEFINE_string("eval_file", None, "Held-out data in the format of --train_file (optional).")
flags.DEFINE_string(
    "init", _DEFAULTS.init,
    "Checkpoint to start from (HF or converted directory, .gguf, hub id org/name[@revision]), or 'scratch'."
)
flags.DEFINE_string(
    "model_config", None, "With --init=scratch: an HF config.json of a supported family (the architecture)."
)
flags.DEFINE_string("tokenizer", None, "Tokenizer directory; default: the --init checkpoint.")
flags.DEFINE_enum(
    "data_mode", _DEFAULTS.data_mode, list(DATA_MODES),
    "pretrain: documents packed into sequences, loss on every token; sft: loss on the response only.",
)
flags.DEFINE_integer(
    "max_seq_len", _DEFAULTS.max_seq_len, "Tokens per sequence (SFT examples are padded or truncated to it)."
)
flags.DEFINE_integer(
    "length_bucket", _DEFAULTS.length_bucket,
    "0: every sequence padded to --max_seq_len. N > 0: batches of sequences of similar length, each cut to "
    "its longest sequence rounded up to a multiple of N tokens (less padding to compute on; one compiled "
    "step per length). For SFT data of uneven lengths.",
)
flags.DEFINE_integer(
    "batch_size", _DEFAULTS.batch_size, "Sequences per micro-batch over all devices (a multiple of --mesh_data)."
)
flags.DEFINE_integer(
    "grad_accum_steps", _DEFAULTS.grad_accum_steps, "Micro-batches whose gradients make one update."
)
flags.DEFINE_integer("train_steps", _DEFAULTS.train_steps, "Optimiser updates in the run.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Peak learning rate (after warmup).")
flags.DEFINE_float(
    "end_learning_rate", _DEFAULTS.end_learning_rate, "Learning rate the cosine decay reaches at --train_steps."
)
flags.DEFINE_integer(
    "warmup_steps", _DEFAULTS.warmup_steps, "Steps of linear warmup from 0 to --learning_rate."
)
flags.DEFINE_float(
    "weight_decay", _DEFAULTS.weight_decay, "AdamW decoupled weight decay (matrices only, not norms or biases)."
)
flags.DEFINE_float(
    "max_grad_norm", _DEFAULTS.max_grad_norm, "Clip gradients to this global norm (0: no clipping)."
)
flags.DEFINE_float("adam_b1", _DEFAULTS.adam_b1, "AdamW beta1.")
flags.DEFINE_float("adam_b2", _DEFAULTS.adam_b2, "AdamW beta2.")
flags.DEFINE_float("adam_eps", _DEFAULTS.adam_eps, "AdamW epsilon.")
flags.DEFINE_enum(
    "compute_dtype", _DEFAULTS.compute_dtype, list(COMPUTE_DTYPES),
    "Dtype of the forward/backward pass; parameters and optimiser state stay float32.",
)
flags.DEFINE_integer("lora_rank", _DEFAULTS.lora_rank, "LoRA rank; 0 trains every parameter.")
flags.DEFINE_float("lora_alpha", _DEFAULTS.lora_alpha, "LoRA alpha: the update is alpha / rank * B @ A.")
flags.DEFINE_list(
    "lora_targets", list(DEFAULT_LORA_TARGETS),
    r"Comma-separated regexes over parameter paths (e.g. layers.0.attn.q_proj) that get LoRA "
    r"factors; BLOOM's fused projection is attn\.qkv_proj$.",
)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the data order, scratch weights and LoRA factors.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every, "Evaluate on --eval_file every this many steps.")
flags.DEFINE_integer(
    "save_every", _DEFAULTS.save_every, "Save the train state (the resume point) every this many steps."
)
flags.DEFINE_integer("log_every", _DEFAULTS.log_every, "Log the loss and steps/s every this many steps.")
flags.DEFINE_enum(
    "export_dtype", _DEFAULTS.export_dtype, list(COMPUTE_DTYPES), "Dtype of the exported HF checkpoint."
)
flags.DEFINE_bool(
    "export_every_save", _DEFAULTS.export_every_save, "Also export OUTPUT_DIR/hf at every save, not only at the end."
)
flags.DEFINE_bool(
    "overwrite", _DEFAULTS.overwrite,
    "Start over (e.g. after a run with other settings): replace the outputs an earlier run "
    "wrote in --output_dir, as its manifest lists them; files it did not write are kept.",
)
def settings_from_flags() -> TrainSettings:
    """The `TrainSettings` the flags describe (every field has a flag of its name)."""
    values = {field.name: flags.FLAGS[field.name].value for field in dataclasses.fields(TrainSettings)}
    values["lora_targets"] = tuple(values["lora_targets"])
    return TrainSettings(**values)
