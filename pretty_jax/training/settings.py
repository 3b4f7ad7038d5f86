"""The settings of a training run: one frozen dataclass, one field per CLI flag.

Fields marked `defines_run` decide the run's result (model, data, optimiser, seed). A
run resumed from its saved state must be given the same values; the others (where and
how often to log, evaluate, save and export) may change between restarts.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from pretty_jax.core.errors import UserError

SCRATCH = "scratch"
DATA_MODES = ("pretrain", "sft")
COMPUTE_DTYPES = ("float32", "bfloat16")
DEFAULT_LORA_TARGETS = (r"attn\.(q|v)_proj$",)


def _run(default: Any) -> Any:
    return dataclasses.field(default=default, metadata={"defines_run": True})


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs (see `pretty_jax.train` for each flag's help).

    init: a checkpoint directory (HF or converted) to start from, or "scratch" to
      initialise the architecture of `model_config` (an HF config.json) randomly.
    tokenizer: tokenizer directory; defaults to `init` when that is a checkpoint.
    data_mode: "pretrain" (documents packed into sequences, loss on every token) or
      "sft" (prompt/response pairs, loss on the response only).
    batch_size: sequences per micro-batch, over all devices (split on the mesh's data
      axis); one optimiser update sees batch_size * grad_accum_steps sequences.
    length_bucket: 0 pads every sequence to max_seq_len; N > 0 batches sequences of
      similar length together and cuts each batch to its longest one, rounded up to a
      multiple of N tokens (see `data`).
    lora_rank: 0 trains every parameter; > 0 trains LoRA factors of the parameters
      whose paths match a `lora_targets` regex and freezes the rest.
    """

    output_dir: str
    train_file: str
    init: str = _run(SCRATCH)
    model_config: str | None = _run(None)
    tokenizer: str | None = _run(None)
    data_mode: str = _run("pretrain")
    max_seq_len: int = _run(512)
    length_bucket: int = _run(0)
    batch_size: int = _run(8)
    grad_accum_steps: int = _run(1)
    train_steps: int = _run(1000)
    learning_rate: float = _run(3e-4)
    end_learning_rate: float = _run(0.0)
    warmup_steps: int = _run(100)
    weight_decay: float = _run(0.0)
    max_grad_norm: float = _run(1.0)
    adam_b1: float = _run(0.9)
    adam_b2: float = _run(0.999)
    adam_eps: float = _run(1e-8)
    compute_dtype: str = _run("float32")
    lora_rank: int = _run(0)
    lora_alpha: float = _run(16.0)
    lora_targets: tuple[str, ...] = _run(DEFAULT_LORA_TARGETS)
    seed: int = _run(0)
    eval_file: str | None = None
    eval_every: int = 100
    save_every: int = 100
    log_every: int = 10
    export_dtype: str = "float32"
    export_every_save: bool = False
    overwrite: bool = False

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
        _check_choice("data_mode", self.data_mode, DATA_MODES)
        _check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        _check_choice("export_dtype", self.export_dtype, COMPUTE_DTYPES)
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


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"--{flag}={value!r} is not one of {', '.join(choices)}")
