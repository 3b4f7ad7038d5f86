"""Training: the loss it minimises, gradient accumulation, LoRA, bad data named by
file:line, and runs that resume after `kill -9` exactly where they stopped."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import write_scratch_inputs
from safetensors.numpy import load_file

from pretty_jax import models
from pretty_jax.checkpoints import export, loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.manifest import MANIFEST
from pretty_jax.core.errors import UserError
from pretty_jax.training import (
    TrainSettings,
    data,
    lora,
    model_setup,
    optim,
    params,
    train,
    train_state,
)
from pretty_jax.training import step as step_lib
from pretty_jax.training.trainer import saved_state_to_resume

ROOT = Path(__file__).resolve().parents[1]
forward = jax.jit(models.forward, static_argnums=0)
SFT_EXAMPLES = [
    {"prompt": "Translate into German: The cat sleeps.", "response": "Die Katze schläft."},
    {"prompt": "Summarize in Spanish: The committee approved.", "response": "El comité aprobó."},
    {"prompt": "Tag: Ich sehe den Hund.", "response": "PRON VERB DET NOUN"},
    {"prompt": "Traduisez en anglais : Le marché.", "response": "The market opens early."},
]


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _settings(init: Path, **overrides) -> TrainSettings:
    values = dict(output_dir="unused", train_file="unused", init=str(init), warmup_steps=0, train_steps=20)
    return TrainSettings(**(values | overrides))


def _setup(settings: TrainSettings):
    start = model_setup.load_starting_model(settings, None)
    model, trainable, frozen = model_setup.split_trainable(settings, start, None)
    return start, model, trainable, frozen


def _sft_batch(directory: Path, tmp_path: Path, seq_len: int = 64) -> data.Sequences:
    tokenizer = load_tokenizer(directory)
    eos, pad = data.special_ids(tokenizer, ())
    path = _write_jsonl(tmp_path / "sft.jsonl", SFT_EXAMPLES)
    return data.load_sequences(path, "sft", tokenizer, seq_len, eos, pad, "--train_file")


# --- the loss ---------------------------------------------------------------------


def test_loss_falls_when_overfitting_one_batch_in_bfloat16_with_float32_master_weights(jax_checkpoint):
    settings = _settings(jax_checkpoint("llama"), learning_rate=3e-3, compute_dtype="bfloat16")
    _, model, trainable, frozen = _setup(settings)
    tokenizer = load_tokenizer(jax_checkpoint("llama"))
    packed = data.pack_documents(tokenizer(list(SENTENCES[:4]))["input_ids"], tokenizer.eos_token_id, 0, 24)
    batch = data.micro_batches(packed.take(np.arange(4)), 1)
    optimizer = optim.make_optimizer(settings)
    state, train_step = step_lib.initial_state(trainable, optimizer), step_lib.make_train_step(model, optimizer)
    assert "bf16" in train_step.lower(state, frozen, batch).as_text()
    losses = []
    for _ in range(20):
        state, metrics = train_step(state, frozen, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.3 * losses[0], losses
    assert {a.dtype for a in jax.tree.leaves((state.trainable, state.opt_state))} <= {np.dtype("float32"), np.dtype("int32")}


def test_sft_loss_is_the_cross_entropy_of_response_tokens_only(jax_checkpoint, tmp_path):
    directory = jax_checkpoint("llama")
    tokenizer = load_tokenizer(directory)
    sequences = _sft_batch(directory, tmp_path)
    for row, example in enumerate(SFT_EXAMPLES):
        prompt = tokenizer(example["prompt"]).input_ids
        response = tokenizer(example["response"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        length = len(prompt) + len(response)
        assert sequences.tokens[row, :length].tolist() == prompt + response
        assert sequences.loss_mask[row].tolist() == [0] * len(prompt) + [1] * len(response) + [0] * (64 - length)
    start, model, trainable, frozen = _setup(_settings(directory))
    batch = {k: v[0] for k, v in data.micro_batches(sequences, 1).items()}
    loss_fn = jax.jit(lambda t, f, b: step_lib.token_loss_sums(model, t, f, b))
    loss_sum, count = loss_fn(trainable, frozen, batch)

    positions = np.broadcast_to(np.arange(64), sequences.tokens.shape)
    logits, _ = forward(
        start.graphdef, params.to_state(start.template, start.params), sequences.tokens, positions,
        sequences.attention_mask,
    )
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    rows, targets = np.nonzero(sequences.loss_mask)
    expected = -logprobs[rows, targets - 1, sequences.tokens[rows, targets]].sum()
    assert int(count) == len(rows) == sequences.target_tokens
    np.testing.assert_allclose(float(loss_sum), expected, rtol=1e-5)


def test_sft_examples_longer_than_max_seq_len_are_cut_and_counted():
    examples = [([1, 2], [3, 9]), ([1, 2, 3], [4, 5, 9]), ([1, 2, 3, 4], [6, 9]), ([1, 2, 3, 4, 5, 6], [7, 9])]
    sequences = data.sft_sequences(examples, pad_id=0, seq_len=5)
    assert (sequences.truncated, sequences.dropped, len(sequences)) == (3, 1, 3)
    assert sequences.tokens.tolist() == [[1, 2, 3, 9, 0], [1, 2, 3, 4, 5], [1, 2, 3, 4, 6]]
    assert sequences.loss_mask.tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]
    assert sequences.attention_mask.tolist() == [[1, 1, 1, 1, 0], [1] * 5, [1] * 5]


def test_packing_makes_every_token_but_the_first_a_target_once():
    packed = data.pack_documents([[5, 6, 7], [8], [10, 11, 12, 13]], eos_id=2, pad_id=0, seq_len=4)
    stream = [5, 6, 7, 2, 8, 2, 10, 11, 12, 13, 2]
    assert packed.tokens.tolist() == [[5, 6, 7, 2], [2, 8, 2, 10], [10, 11, 12, 13], [13, 2, 0, 0]]
    targets = packed.tokens[packed.loss_mask.astype(bool)].tolist()
    assert targets == stream[1:]


def test_batch_order_is_a_function_of_seed_and_step_and_covers_each_epoch():
    order, again = data.BatchOrder(10, 3, seed=7), data.BatchOrder(10, 3, seed=7)
    epoch = np.concatenate([order.indices(step) for step in range(3)])
    assert len(set(epoch.tolist())) == 9
    assert order.position(4) == {"epoch": 1, "batch_in_epoch": 1}
    np.testing.assert_array_equal(again.indices(4), order.indices(4))
    assert not np.array_equal(data.BatchOrder(10, 3, seed=8).indices(0), order.indices(0))


@pytest.mark.slow
def test_accumulating_two_micro_batches_equals_one_batch_of_twice_the_size(jax_checkpoint, tmp_path):
    directory = jax_checkpoint("llama")
    sequences = _sft_batch(directory, tmp_path)  # rows with different numbers of targets
    assert len(set(sequences.loss_mask.sum(1).tolist())) > 1
    _, model, trainable, frozen = _setup(_settings(directory))
    sgd = optax.sgd(1.0)  # the update is minus the gradient itself
    train_step = step_lib.make_train_step(model, sgd)
    results = {}
    for accum in (1, 2):
        state = step_lib.initial_state(jax.tree.map(jnp.copy, trainable), sgd)
        state, metrics = train_step(state, frozen, data.micro_batches(sequences, accum))
        results[accum] = (jax.device_get(state.trainable), float(metrics["loss"]))
    (one, loss_one), (two, loss_two) = results[1], results[2]
    np.testing.assert_allclose(loss_two, loss_one, rtol=1e-6)
    for path in one:
        assert not np.array_equal(one[path], np.asarray(trainable[path])), path
        np.testing.assert_allclose(two[path], one[path], atol=2e-6, rtol=0, err_msg=path)


# --- LoRA ---------------------------------------------------------------------------


@pytest.mark.slow
def test_lora_trains_only_its_factors_and_exports_base_plus_delta(jax_checkpoint, tmp_path):
    directory = jax_checkpoint("llama")
    settings = _settings(directory, lora_rank=4, lora_alpha=8.0, learning_rate=1e-2)
    start, model, factors, frozen = _setup(settings)
    assert sorted(factors) == [f"layers.{i}.attn.{p}_proj" for i in (0, 1) for p in ("q", "v")]
    base = {path: np.array(array) for path, array in frozen.items()}
    sequences = _sft_batch(directory, tmp_path)
    batch = data.micro_batches(sequences, 1)
    tokens, mask = sequences.tokens, sequences.attention_mask
    positions = np.broadcast_to(np.arange(tokens.shape[1]), tokens.shape)
    base_logits, _ = forward(start.graphdef, params.to_state(start.template, frozen), tokens, positions, mask)
    lora_logits, _ = forward(start.graphdef, model.state(factors, frozen), tokens, positions, mask)
    np.testing.assert_array_equal(lora_logits, base_logits)  # B = 0: exactly the base model

    optimizer = optim.make_optimizer(settings)
    state, train_step = step_lib.initial_state(factors, optimizer), step_lib.make_train_step(model, optimizer)
    factor_shapes = {a.shape for a in jax.tree.leaves(factors)}
    assert {a.shape for a in jax.tree.leaves(state.opt_state)} <= factor_shapes | {()}
    for _ in range(3):
        state, _ = train_step(state, frozen, batch)
    for path, array in frozen.items():
        np.testing.assert_array_equal(np.asarray(array), base[path], err_msg=path)
    trained = jax.device_get(state.trainable)
    assert all(np.abs(f["b"]).max() > 0 for f in trained.values())

    merged = model_setup.merged_params(model, state.trainable, frozen)
    out = export.save_hf_checkpoint(
        tmp_path / "hf", start.config, jax.device_get(merged), start.hf_config, tokenizer_dir=directory
    )
    exported, original = load_file(out / "model.safetensors"), load_file(directory / "model.safetensors")
    scale = settings.lora_alpha / settings.lora_rank
    for key, tensor in original.items():
        adapted = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.([qv]_proj)\.weight", key)
        if adapted:
            f = trained[f"layers.{adapted[1]}.attn.{adapted[2]}"]
            np.testing.assert_allclose(exported[key], tensor + scale * f["b"] @ f["a"], atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(exported[key], tensor, err_msg=key)


def test_lora_targets_must_match_matrices(jax_checkpoint):
    config = loading.load_config(jax_checkpoint("bloom"))
    layout = models.family_of(config).checkpoint_layout(config)
    shapes = params.shapes(models.abstract_model(config, jnp.float32)[1])
    with pytest.raises(UserError, match=r"matches no parameter; paths look like: .*layers.0.attn.qkv_proj"):
        lora.find_targets(layout, shapes, [r"attn\.(q|v)_proj$"])
    with pytest.raises(UserError, match=r"matches layers.0.attn_norm.scale, which is not a matrix"):
        lora.find_targets(layout, shapes, [r"attn_norm\.scale$"])
    fused = lora.find_targets(layout, shapes, [r"attn\.qkv_proj$"])
    assert set(fused) == {"layers.0.attn.qkv_proj", "layers.1.attn.qkv_proj"}
    assert fused["layers.0.attn.qkv_proj"].hf_shape == (3 * 64, 64)


# --- bad input ----------------------------------------------------------------------


def test_bad_data_is_refused_with_file_and_line(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "response": "b"\n')
    with pytest.raises(UserError, match=rf"{path}:3: not valid JSON"):
        data.read_sft_examples(path)
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(UserError, match=rf"{path}:2: field 'response' must be a string, but it is missing"):
        data.read_sft_examples(path)
    path.write_text('{"prompt": "a", "response": 3}\n')
    with pytest.raises(UserError, match=rf"{path}:1: field 'response' must be a string"):
        data.read_sft_examples(path)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "ok"}\n["not", "an", "object"]\n')
    with pytest.raises(UserError, match=rf"{corpus}:2: expected a JSON object"):
        data.read_documents(corpus)
    text = tmp_path / "corpus.txt"
    text.write_bytes(b"fine\nbroken \xff\n")
    with pytest.raises(UserError, match=rf"{text}:2: not valid UTF-8"):
        data.read_documents(text)
    with pytest.raises(UserError, match=r"--eval_file .*missing.txt does not exist"):
        data.read_documents(tmp_path / "missing.txt", "--eval_file")


@pytest.mark.slow
def test_cli_reports_bad_data_as_one_line_naming_file_and_line(scratch_run, tmp_path):
    root, flag_values = scratch_run
    bad = _write_jsonl(tmp_path / "sft.jsonl", SFT_EXAMPLES[:1] + [{"prompt": "no response"}])
    bad_flags = flag_values | {"data_mode": "sft", "train_file": bad}
    result = _run_cli(root, bad_flags, tmp_path / "out", ["-m", "pretty_jax.train"])
    assert result.returncode == 2
    assert f"error: {bad}:2: field 'response' must be a string, but it is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_that_cannot_work_are_refused_by_flag():
    with pytest.raises(UserError, match="--init=scratch needs --model_config"):
        TrainSettings(output_dir="o", train_file="t").validate()
    with pytest.raises(UserError, match="--warmup_steps=10 must be >= 0 and below --train_steps=10"):
        TrainSettings(output_dir="o", train_file="t", init="ckpt", warmup_steps=10, train_steps=10).validate()
    with pytest.raises(UserError, match=r"--lora_targets: '\(' is not a valid regex"):
        TrainSettings(output_dir="o", train_file="t", init="ckpt", lora_targets=("(",)).validate()


# --- resuming after kill -9 ---------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory):
    """Flags of a from-scratch run of a tiny LLaMA on a 2-device data-parallel mesh."""
    root = tmp_path_factory.mktemp("scratch")
    write_scratch_inputs(root, repeats=3)
    _write_jsonl(root / "eval.jsonl", [{"text": s} for s in SENTENCES[:4]])
    flag_values = dict(
        init="scratch", model_config=root / "config.json", tokenizer=root / "tokenizer",
        train_file=root / "corpus.txt", eval_file=root / "eval.jsonl", max_seq_len=32, batch_size=4,
        grad_accum_steps=2, train_steps=8, warmup_steps=2, learning_rate=1e-2, weight_decay=0.1,
        save_every=3, eval_every=4, log_every=1, seed=3, mesh_data=2,
    )
    return root, flag_values


def _run_cli(root: Path, flag_values: dict, output_dir: Path, module: list[str]) -> subprocess.CompletedProcess:
    flagfile = root / f"{output_dir.name}.cfg"
    flagfile.write_text("".join(f"--{k}={v}\n" for k, v in (flag_values | {"output_dir": output_dir}).items()))
    env = os.environ | {
        "JAX_NUM_CPU_DEVICES": "2",
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax_cache"),  # the three runs compile the same programs
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    return subprocess.run(
        [sys.executable, *module, f"--flagfile={flagfile}"], capture_output=True, text=True, env=env, cwd=ROOT
    )


@pytest.fixture(scope="module")
def resumed_and_uninterrupted(scratch_run):
    root, flag_values = scratch_run
    whole = _run_cli(root, flag_values, root / "whole", ["-m", "pretty_jax.train"])
    assert whole.returncode == 0, whole.stderr
    killed = _run_cli(root, flag_values, root / "resumed", [str(ROOT / "tests/train_worker.py"), "--kill_after_step=5"])
    assert killed.returncode == -9, killed.stderr
    return root / "whole", root / "resumed"


@pytest.mark.slow
def test_a_run_killed_after_a_save_resumes_to_the_same_losses_and_weights(scratch_run, resumed_and_uninterrupted):
    root, flag_values = scratch_run
    whole, resumed = resumed_and_uninterrupted
    assert train_state.latest(resumed).name == "step_00000003"
    assert not (resumed / "hf").exists()
    # What a kill in the middle of a save (its files recorded, state.json unfinished) and
    # of a log line leaves behind.
    unfinished = "train_state/step_00000006"
    manifest = json.loads((resumed / MANIFEST).read_text())
    manifest["files"] += [f"{unfinished}/arrays.safetensors", f"{unfinished}/state.json"]
    manifest["dirs"] += [unfinished]
    (resumed / MANIFEST).write_text(json.dumps(manifest))
    (resumed / unfinished).mkdir()
    (resumed / unfinished / "arrays.safetensors").write_bytes(b"\0" * 10)
    (resumed / unfinished / "state.json.tmp").write_bytes(b'{"for')
    with open(resumed / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')
    restarted = _run_cli(root, flag_values, resumed, ["-m", "pretty_jax.train"])
    assert restarted.returncode == 0, restarted.stderr
    assert "resumed from" in restarted.stderr and "(step 3)" in restarted.stderr

    curve = lambda run: (run / "metrics.jsonl").read_text().splitlines()
    assert len(curve(whole)) == 8 + 2  # 8 steps and 2 evaluations
    assert curve(resumed) == curve(whole)
    for name in ("hf/model.safetensors", "train_state/step_00000008/arrays.safetensors"):
        expected, got = load_file(whole / name), load_file(resumed / name)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name}: {key}")
    assert [p.name for p in (resumed / "train_state").iterdir()] == ["step_00000008"]


@pytest.mark.slow
def test_a_run_from_scratch_learns_and_hf_loads_its_export(scratch_run, resumed_and_uninterrupted):
    pytest.importorskip("torch", reason="HF transformers' model runs on torch")
    whole, _ = resumed_and_uninterrupted
    records = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert losses[-1] < losses[0] and evals[-1] < evals[0]
    assert records[0]["learning_rate"] == 0.0 and records[2]["learning_rate"] == pytest.approx(1e-2)
    ours = loading.load_model(whole / "hf")
    tokenizer = load_tokenizer(whole / "hf")
    tokens = np.array([tokenizer(SENTENCES[0]).input_ids])
    mask, positions = np.ones_like(tokens), np.arange(tokens.shape[1])[None]
    logits, _ = forward(ours.graphdef, ours.params, tokens, positions, mask)
    np.testing.assert_allclose(HFReference(whole / "hf").logits(tokens, mask), logits, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_resuming_with_a_changed_flag_is_refused_by_name_unless_overwrite(
    scratch_run, resumed_and_uninterrupted, tmp_path
):
    _, flag_values = scratch_run
    whole, _ = resumed_and_uninterrupted
    shutil.copytree(whole, tmp_path / "run")  # with its manifest: a train output
    values = {k: str(v) if isinstance(v, Path) else v for k, v in flag_values.items() if k != "mesh_data"}
    settings = TrainSettings(**values, output_dir=str(tmp_path / "run"))
    saved = tmp_path / "run" / "train_state" / "step_00000008"
    changed = dataclasses.replace(settings, learning_rate=2e-2)
    with pytest.raises(UserError, match=r"other settings:\n    --learning_rate: 0.01 -> 0.02\n.*--overwrite"):
        train(changed)  # refused before any model is loaded
    assert saved_state_to_resume(dataclasses.replace(settings, log_every=5, eval_every=2, save_every=1)) == saved
    assert saved_state_to_resume(dataclasses.replace(changed, overwrite=True)) is None
    assert saved.exists()  # the check removes nothing: --overwrite retires the old outputs later
