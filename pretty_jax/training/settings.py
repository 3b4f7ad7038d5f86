"""The settings of a training run: one frozen dataclass, one field per CLI flag (its
help in the field's metadata: cli/train_flags.py defines the flags from the fields).

Fields marked `defines_run` decide the run's result (model, data, optimiser, seed). A
run resumed from its saved state must be given the same values; the others (where and
how often to log, evaluate, save and export) may change between restarts.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from pretty_jax.core.errors import UserError, check_choice

SCRATCH = "scratch"
DATA_MODES = ("pretrain", "sft")
COMPUTE_DTYPES = ("float32", "bfloat16")
DEFAULT_LORA_TARGETS = (r"attn\.(q|v)_proj$",)


def _setting(default: Any, help: str, defines_run: bool = True, **metadata: Any) -> Any:
    """A field: its default, its flag's help, whether it defines the run (`metadata`:
    "choices" for a flag of fixed values)."""
    return dataclasses.field(default=default, metadata={"help": help, "defines_run": defines_run} | metadata)


def _operational(default: Any, help: str, **metadata: Any) -> Any:
    """A field that may change between restarts of a run."""
    return _setting(default, help, defines_run=False, **metadata)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs; each field is a flag of `python -m
    pretty_jax.train` of the same name, whose help is the field's `help` metadata.

    One optimiser update sees batch_size * grad_accum_steps sequences (`global_batch`).
    """

    output_dir: str = dataclasses.field(metadata={
        "help": "Run directory: metrics.jsonl, train_state/ (resume point) and hf/ (the model).",
        "defines_run": False})
    train_file: str = dataclasses.field(metadata={
        "help": "Training data: pretrain = a .txt corpus (one document per line) or .jsonl with a 'text' field; "
                "sft = .jsonl with 'prompt' and 'response' fields.",
        "defines_run": False})
    init: str = _setting(
        SCRATCH,
        "Checkpoint to start from (HF or converted directory, .gguf, hub id org/name[@revision]), or 'scratch'.")
    model_config: str | None = _setting(
        None, "With --init=scratch: an HF config.json of a supported family (the architecture).")
    tokenizer: str | None = _setting(None, "Tokenizer directory; default: the --init checkpoint.")
    data_mode: str = _setting(
        "pretrain", "pretrain: documents packed into sequences, loss on every token; sft: loss on the response only.",
        choices=DATA_MODES)
    max_seq_len: int = _setting(512, "Tokens per sequence (SFT examples are padded or truncated to it).")
    length_bucket: int = _setting(
        0, "0: every sequence padded to --max_seq_len. N > 0: batches of sequences of similar length, each cut to "
           "its longest sequence rounded up to a multiple of N tokens (less padding to compute on; one compiled "
           "step per length). For SFT data of uneven lengths.")
    batch_size: int = _setting(8, "Sequences per micro-batch over all devices (a multiple of --mesh_data).")
    grad_accum_steps: int = _setting(1, "Micro-batches whose gradients make one update.")
    train_steps: int = _setting(1000, "Optimiser updates in the run.")
    learning_rate: float = _setting(3e-4, "Peak learning rate (after warmup).")
    end_learning_rate: float = _setting(0.0, "Learning rate the cosine decay reaches at --train_steps.")
    warmup_steps: int = _setting(100, "Steps of linear warmup from 0 to --learning_rate.")
    weight_decay: float = _setting(0.0, "AdamW decoupled weight decay (matrices only, not norms or biases).")
    max_grad_norm: float = _setting(1.0, "Clip gradients to this global norm (0: no clipping).")
    adam_b1: float = _setting(0.9, "AdamW beta1.")
    adam_b2: float = _setting(0.999, "AdamW beta2.")
    adam_eps: float = _setting(1e-8, "AdamW epsilon.")
    compute_dtype: str = _setting(
        "float32", "Dtype of the forward/backward pass; parameters and optimiser state stay float32.",
        choices=COMPUTE_DTYPES)
    lora_rank: int = _setting(0, "LoRA rank; 0 trains every parameter.")
    lora_alpha: float = _setting(16.0, "LoRA alpha: the update is alpha / rank * B @ A.")
    lora_targets: tuple[str, ...] = _setting(
        DEFAULT_LORA_TARGETS,
        r"Comma-separated regexes over parameter paths (e.g. layers.0.attn.q_proj) that get LoRA factors; "
        r"BLOOM's fused projection is attn\.qkv_proj$.")
    seed: int = _setting(0, "Seed of the data order, scratch weights and LoRA factors.")
    eval_file: str | None = _operational(None, "Held-out data in the format of --train_file (optional).")
    eval_every: int = _operational(100, "Evaluate on --eval_file every this many steps.")
    save_every: int = _operational(100, "Save the train state (the resume point) every this many steps.")
    log_every: int = _operational(10, "Log the loss and steps/s every this many steps.")
    export_dtype: str = _operational("float32", "Dtype of the exported HF checkpoint.", choices=COMPUTE_DTYPES)
    export_every_save: bool = _operational(False, "Also export OUTPUT_DIR/hf at every save, not only at the end.")
    overwrite: bool = _operational(
        False, "Start over (e.g. after a run with other settings): replace the outputs an earlier run wrote in "
               "--output_dir, as its manifest lists them; files it did not write are kept.")

    @property
    def from_scratch(self) -> bool:
        return self.init == SCRATCH

    @property
    def tokenizer_dir(self) -> str:
        return self.tokenizer or self.init

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum_steps

    def validate(self) -> None:
        """Raises UserError naming the first flag whose value cannot work."""
        for name in ("batch_size", "grad_accum_steps", "train_steps",
                     "eval_every", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name}={getattr(self, name)} must be >= 1")
        if self.length_bucket < 0:
            raise UserError(f"--length_bucket={self.length_bucket} must be >= 0 (0: every batch --max_seq_len long)")
        if self.max_seq_len < 2:
            raise UserError(f"--max_seq_len={self.max_seq_len} must be >= 2 (an input and a target)")
        if not 0 <= self.warmup_steps < self.train_steps:
            raise UserError(
                f"--warmup_steps={self.warmup_steps} must be >= 0 and below --train_steps={self.train_steps}"
            )
        check_choice("--data_mode", self.data_mode, DATA_MODES)
        check_choice("--compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        check_choice("--export_dtype", self.export_dtype, COMPUTE_DTYPES)
        if self.from_scratch and not (self.model_config and self.tokenizer):
            raise UserError("--init=scratch needs --model_config (an HF config.json) and --tokenizer")
        if not self.from_scratch and self.model_config:
            raise UserError("--model_config is only for --init=scratch; a checkpoint brings its own config")
        if self.lora_rank < 0:
            raise UserError(f"--lora_rank={self.lora_rank} must be >= 0 (0: full fine-tuning)")
        if self.lora_rank and self.from_scratch:
            raise UserError("--lora_rank > 0 needs a pretrained --init checkpoint, not scratch")
        for pattern in self.lora_targets:
            try:
                re.compile(pattern)
            except re.error as e:
                raise UserError(f"--lora_targets: {pattern!r} is not a valid regex ({e})") from None

    def defining_values(self) -> dict[str, Any]:
        """The fields that define the run, JSON-normalised (tuples as lists)."""
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.metadata.get("defines_run")
        }
        return json.loads(json.dumps(values))

    def changed_from(self, stored: Mapping[str, Any]) -> list[str]:
        """`--flag: stored -> now` for each defining field that differs from `stored`
        (a field newer than `stored` counts as its default there)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.metadata.get("defines_run")}
        before = json.loads(json.dumps(defaults)) | dict(stored)
        return [
            f"--{name}: {before.get(name)!r} -> {value!r}"
            for name, value in self.defining_values().items()
            if before.get(name) != value
        ]

