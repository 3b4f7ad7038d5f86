"""The training loop: `train(settings)` from start (or from the last saved state) to
`train_steps`, then the model exported in HF format to `OUTPUT_DIR/hf`.

    OUTPUT_DIR/metrics.jsonl    the loss curve (see `metrics_log`)
    OUTPUT_DIR/train_state/     the last saved state (see `train_state`)
    OUTPUT_DIR/hf/              the trained model as an HF checkpoint

Running the same settings again continues from the last saved state and reproduces
the uninterrupted run exactly: the state holds every array an update reads, and the
batch of each step is a pure function of (seed, step).

OUTPUT_DIR is owned file by file (`run_dir`, kind "train"): each file is listed in its
manifest before it is written (never a whole folder), a non-empty directory without a
manifest is refused, the run holds the directory's lock from the moment it opens it
to its end, and --overwrite retires (moves aside) only the listed files, once the
settings, the data and the starting model have all loaded, deleting them after the
first update. A file a user puts into `hf/` or `train_state/` (a model card, a note)
is never moved or removed; one under a name the run writes is refused, not replaced.

The export is written to a temporary folder outside OUTPUT_DIR and then moved into
`hf/` file by file, each file replaced atomically; a run killed in between leaves a
mix of the two exports, which the same command, run again, replaces (it exports
again at its end).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from pretty_jax.checkpoints import export, loading, references
from pretty_jax.checkpoints.gguf import importer
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core import run_dir
from pretty_jax.core.errors import UserError
from pretty_jax.core.manifest import check_output_dir
from pretty_jax.core.progress import Progress
from pretty_jax.engine import parallel
from pretty_jax.models import ModelConfig
from pretty_jax.training import data, model_setup, optim, train_state
from pretty_jax.training import step as step_lib
from pretty_jax.training.metrics_log import METRICS_FILE, MetricsLog
from pretty_jax.training.settings import TrainSettings

HF_DIR = "hf"
OUTPUT_FLAG = "--output_dir"
# The files an export writes into HF_DIR, besides the tokenizer's (`export.TOKENIZER_FILES`).
HF_FILES = ("config.json", "generation_config.json", export.WEIGHTS_FILE)
# Called after every update with the step count and the (device) metrics.
OnStep = Callable[[int, dict[str, jax.Array]], None]


def _load_data(settings: TrainSettings, config: ModelConfig) -> tuple[data.Sequences, data.Sequences | None]:
    """The training and (if any) evaluation sequences, checked against the model."""
    tokenizer = load_tokenizer(_tokenizer_dir(settings))
    eos_id, pad_id = data.special_ids(tokenizer, config.special_tokens.eos_token_ids)
    load = lambda path, flag: data.load_sequences(
        Path(path), settings.data_mode, tokenizer, settings.max_seq_len, eos_id, pad_id, flag
    )
    train = load(settings.train_file, "--train_file")
    evaluation = load(settings.eval_file, "--eval_file") if settings.eval_file else None
    for flag, sequences in (("--train_file", train), ("--eval_file", evaluation)):
        if sequences is not None and int(sequences.tokens.max()) >= config.vocab_size:
            raise UserError(
                f"{flag}: the tokenizer ({settings.tokenizer_dir}) produces token id "
                f"{int(sequences.tokens.max())}, beyond the model's vocab_size={config.vocab_size}"
            )
    logging.info(
        "train data: %d sequences of %d tokens, %d targets; %d SFT examples truncated (%d dropped)",
        len(train), settings.max_seq_len, train.target_tokens, train.truncated, train.dropped,
    )
    return train, evaluation


class _Run:
    """One call of `train`: the data, model, compiled steps and output files. The data
    is read first (`__init__`), so that a mistake in it shows before the output
    directory is opened and before a large model loads (`load_model`)."""

    def __init__(self, settings: TrainSettings, mesh: Mesh | None, on_step: OnStep | None, description: str):
        self.settings, self.mesh, self.on_step, self.description = settings, mesh, on_step, description
        self.output_dir = Path(settings.output_dir)
        config, _, _ = model_setup.architecture(settings)
        self.train_data, self.eval_data = _load_data(settings, config)
        lengths = self.train_data.lengths if settings.length_bucket else None
        self.order = data.BatchOrder(len(self.train_data), settings.global_batch, settings.seed, lengths)
        self.output: run_dir.RunDirectory | None = None

    def load_model(self) -> None:
        """The starting model, the optimiser and the compiled steps."""
        settings, mesh = self.settings, self.mesh
        self.start = model_setup.load_starting_model(settings, mesh)
        self.model, trainable, self.frozen = model_setup.split_trainable(settings, self.start, mesh)
        optimizer = optim.make_optimizer(settings)
        self.schedule = optim.learning_rate_schedule(settings)
        self.initial = model_setup.on_mesh(mesh, step_lib.initial_state(trainable, optimizer))
        self.train_step = step_lib.make_train_step(self.model, optimizer)
        self.eval_step = step_lib.make_eval_step(self.model)
        self.pending: list[tuple[int, dict[str, jax.Array]]] = []
        self.clock = (time.perf_counter(), 0)
        self.steps_per_second = float("nan")

    def _device(self, host: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        return {k: parallel.device_array(self.mesh, v, (None, "batch", None)) for k, v in host.items()}

    def _train_batch(self, step: int) -> dict[str, jax.Array]:
        """Step `step`'s batch [A, B, T], its rows split on the mesh's data axis (T cut
        to the batch's length bucket with --length_bucket)."""
        sequences = self.train_data.take(self.order.indices(step))
        if self.settings.length_bucket:
            sequences = data.cut_to_bucket(sequences, self.settings.length_bucket)
        return self._device(data.micro_batches(sequences, self.settings.grad_accum_steps))

    def _state_info(self, step: int) -> dict[str, Any]:
        return {
            "settings": self.settings.defining_values(),
            "next_batch": self.order.position(step),
            "train_sequences": len(self.train_data),
        }

    def start_or_resume(self, saved: Path | None) -> step_lib.TrainState:
        """The initial state, or the one saved in `saved` (settings already checked)."""
        if saved is None:
            self.metrics.keep_until(0)
            return self.initial
        info = train_state.read_info(saved)
        if info["train_sequences"] != len(self.train_data):
            raise UserError(
                f"{saved} was saved by a run over {info['train_sequences']} training sequences; "
                f"{self.settings.train_file} now gives {len(self.train_data)}. Restore the data, "
                "choose another --output_dir, or pass --overwrite to start over"
            )
        state = train_state.restore(saved, self.initial)
        self.metrics.keep_until(info["step"])
        self.clock = (time.perf_counter(), info["step"])
        logging.info("resumed from %s (step %d)", saved, info["step"])
        return state

    def train(self, output: run_dir.RunDirectory) -> Path:
        """Resumes or starts over in `output` (opened, locked), trains and exports."""
        _check_owned(output)
        train_state.remove_unfinished(output)
        saved = saved_state_to_resume(self.settings)
        self.load_model()
        if self.settings.overwrite:
            output.retire()  # everything has loaded: the old outputs move aside
        self.output, self.metrics = output, MetricsLog(output)
        state = self.run(self.start_or_resume(saved))
        output.discard_retired()
        return self.export(state)

    def run(self, state: step_lib.TrainState) -> step_lib.TrainState:
        first = int(state.step)
        with Progress(self.settings.train_steps, self.description, unit="steps", initial=first) as self.progress:
            for step in range(first, self.settings.train_steps):
                state, metrics = self.train_step(state, self.frozen, self._train_batch(step))
                if step == first and self.output is not None:
                    self.output.discard_retired()  # the new run has started cleanly
                self.pending.append((step + 1, metrics))
                if self.on_step is not None:
                    self.on_step(step + 1, metrics)
                self._after_step(step + 1, state)
        return state

    def _after_step(self, done: int, state: step_lib.TrainState) -> None:
        settings, last = self.settings, done == self.settings.train_steps
        evaluate = self.eval_data is not None and (done % settings.eval_every == 0 or last)
        save = done % settings.save_every == 0 or last
        if done % settings.log_every == 0 or evaluate or save:
            self._flush()
        if evaluate:
            self._evaluate(done, state.trainable)
        if save:
            train_state.save(self.output, state, self._state_info(done))
            if settings.export_every_save and not last:
                self.export(state)

    def _flush(self) -> None:
        """Writes the pending steps' metrics (fetching them from the device only now,
        so that the host runs ahead of the device between logs) and advances the
        progress bar (or logs its line) to the last of them."""
        if not self.pending:
            return
        records = [
            {"step": done, **{k: float(v) for k, v in jax.device_get(m).items()},
             "learning_rate": float(self.schedule(done - 1))}
            for done, m in self.pending
        ]
        now, done, previous = time.perf_counter(), self.pending[-1][0], self.clock[1]
        self.steps_per_second = (done - previous) / max(now - self.clock[0], 1e-9)
        self.clock, self.pending = (now, done), []
        self.metrics.append(records)
        last = records[-1]
        self.progress.update(done - previous, loss=last["loss"], grad_norm=last["grad_norm"],
                             lr=last["learning_rate"])

    def _evaluate(self, done: int, trainable: Any) -> None:
        loss_sum, count = 0.0, 0.0
        for host in data.eval_batches(self.eval_data, self.settings.batch_size, self.settings.length_bucket):
            batch_loss, batch_count = self.eval_step(trainable, self.frozen, self._device(host))
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
        eval_loss = loss_sum / max(count, 1.0)
        self.metrics.append([{"step": done, "eval_loss": eval_loss, "eval_tokens": count}])
        logging.info(
            "step %d: eval_loss %.4f over %d tokens (train: %.2f steps/s)",
            done, eval_loss, count, self.steps_per_second,
        )

    def export(self, state: step_lib.TrainState) -> Path:
        merged = model_setup.merged_params(self.model, state.trainable, self.frozen)
        host = parallel.to_host(merged)
        out_dir = self.output_dir / HF_DIR
        if self.output is not None and self.output.active:
            with tempfile.TemporaryDirectory(prefix="pretty_jax-export-") as staging:
                export.save_hf_checkpoint(
                    Path(staging) / HF_DIR, self.start.config, host, self.start.hf_config,
                    dtype=self.settings.export_dtype, generation_config=self.start.generation_config,
                    tokenizer_dir=_tokenizer_dir(self.settings),
                )
                self.output.place_files(Path(staging) / HF_DIR, HF_DIR, move=True)
            logging.info("exported the model (%s) to %s", self.settings.export_dtype, out_dir)
        return out_dir


def check_mesh(settings: TrainSettings, mesh: Mesh | None) -> None:
    if mesh is not None and settings.batch_size % mesh.shape[parallel.DATA]:
        raise UserError(
            f"--batch_size={settings.batch_size} is not a multiple of the mesh's data axis "
            f"({mesh.shape[parallel.DATA]} devices)"
        )


def _tokenizer_dir(settings: TrainSettings) -> Path:
    """The tokenizer directory: --tokenizer, else the --init checkpoint's (a hub id
    resolved to its snapshot in the HF cache, see `references`; a .gguf file or package
    to the cached view of its tokenizer files)."""
    flag = "--tokenizer" if settings.tokenizer else "--init"
    path = references.resolve(settings.tokenizer_dir, flag)
    return loading.model_directory(path, flag) if importer.is_gguf(path) else path


def check_inputs(settings: TrainSettings) -> None:
    """Refuses, naming the flag, an input path that does not exist (before the output
    directory is touched); a hub id or package reference in --init or --tokenizer is
    resolved here, once."""
    paths = [("--init", settings.init, "a checkpoint directory, a .gguf file, a hub id or scratch")]
    paths += [("--model_config", settings.model_config, "an HF config.json")]
    paths += [("--tokenizer", settings.tokenizer, "a tokenizer directory or a hub id")]
    for flag, path, what in paths:
        if path is None or (flag == "--init" and settings.from_scratch):
            continue
        local = Path(path) if flag == "--model_config" else references.resolve(path, flag)
        if not local.exists():
            raise UserError(f"{flag}={path} does not exist; give {what}")
    if not settings.from_scratch:
        loading.check_model_path(settings.init, "--init")


def _check_owned(output: run_dir.RunDirectory) -> None:
    """Refuses, before anything changes, a directory where a file the run writes is
    taken by one that its manifest does not list (a user's file, which the run would
    replace), or where one of its folders is a file or a link. A user's other files in
    `hf/` and `train_state/` are no obstacle: they are left alone."""
    if not output.active:
        return
    for folder in (HF_DIR, train_state.STATE_DIR):
        path = output.path_of(folder)
        if path.exists() and not path.is_dir():
            raise UserError(f"{OUTPUT_FLAG}={output.path} has a file {folder} where pretty_jax train writes a "
                            f"folder; move it away or choose another {OUTPUT_FLAG}")
    names = [METRICS_FILE] + [f"{HF_DIR}/{name}" for name in HF_FILES + export.TOKENIZER_FILES]
    for name in names:
        if os.path.lexists(output.path_of(name)) and not output.owns(name):
            raise UserError(
                f"{OUTPUT_FLAG}={output.path} has {name}, which pretty_jax train did not write "
                f"(its manifest does not list it) and would replace; move it away or choose "
                f"another {OUTPUT_FLAG}"
            )


def open_output(settings: TrainSettings) -> run_dir.RunDirectory:
    """The output directory, opened and locked by process 0 (the others only read it)."""
    if jax.process_index() == 0:
        return run_dir.RunDirectory.open(Path(settings.output_dir), "train", OUTPUT_FLAG)
    return run_dir.RunDirectory.passive(Path(settings.output_dir), "train", OUTPUT_FLAG)


def saved_state_to_resume(settings: TrainSettings) -> Path | None:
    """The last state saved in the output directory, after checking that it belongs to
    a run with these settings (before the model is loaded, so a mistake fails fast).
    None with --overwrite: the old outputs are then retired, not resumed."""
    if settings.overwrite:
        return None
    saved = train_state.latest(Path(settings.output_dir))
    if saved is None:
        return None
    changes = settings.changed_from(train_state.read_info(saved)["settings"])
    if changes:
        raise UserError(
            f"{saved} was saved by a run with other settings:\n    " + "\n    ".join(changes)
            + "\nresume with the same flags, choose another --output_dir, or pass --overwrite "
            "to start over"
        )
    return saved


def train(
    settings: TrainSettings, mesh: Mesh | None = None, on_step: OnStep | None = None, description: str = "train"
) -> Path:
    """Trains as `settings` say, resuming from `OUTPUT_DIR/train_state` when it holds
    this run's state; returns the directory of the exported HF checkpoint.

    The settings, the input paths and the data are checked before the output directory
    is opened (see the module's docstring for what the run may replace there).

    mesh: a (data, model) mesh (`parallel.make_mesh`): the batch is split on `data`,
      parameters on `model` by their logical axes; None runs on the default device.
    on_step: called after every update as on_step(step, device metrics).
    description: the name of the progress bar (log lines `<description>: step/total
      steps, rate, ETA, loss, grad_norm, lr` every --log_every steps off a terminal).
    """
    settings.validate()
    check_mesh(settings, mesh)
    check_inputs(settings)
    check_output_dir(Path(settings.output_dir), OUTPUT_FLAG)
    run = _Run(settings, mesh, on_step, description)
    output = open_output(settings)
    try:
        return run.train(output)
    finally:
        output.close()
