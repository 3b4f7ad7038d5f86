"""Length bucketing of SFT training (--length_bucket): batches of similar lengths, each cut
to its bucket, with every sequence still seen once an epoch, the same loss as the padded
batch, and a run stopped after a save that continues on the same loss curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.training import TrainSettings, data, model_setup, train
from pretty_jax.training import step as step_lib

EXAMPLES = [
    {"prompt": "Translate into German: The cat sleeps.", "response": " Die Katze schläft."},
    {"prompt": "Translate into German: It rains.", "response": " Es regnet."},
    {"prompt": "Translate into German: The committee approved the budget after a long debate.",
     "response": " Der Ausschuss billigte den Haushalt nach einer langen Debatte."},
    {"prompt": "Translate into French: Good night.", "response": " Bonne nuit."},
    {"prompt": "Translate into French: The market opens early on Sundays in the old town.",
     "response": " Le marché ouvre tôt le dimanche dans la vieille ville."},
    {"prompt": "Translate into French: We eat bread.", "response": " Nous mangeons du pain."},
    {"prompt": "Translate into German: Yes.", "response": " Ja."},
    {"prompt": "Translate into German: The train to Berlin leaves at seven in the morning.",
     "response": " Der Zug nach Berlin fährt um sieben Uhr morgens ab."},
]


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_grouped_batches_hold_similar_lengths_and_each_sequence_once_an_epoch():
    lengths = np.random.default_rng(1).integers(10, 200, size=403)
    grouped = data.BatchOrder(403, 8, seed=3, lengths=lengths)
    plain = data.BatchOrder(403, 8, seed=3)
    epoch = [grouped.indices(step) for step in range(grouped.batches_per_epoch)]
    seen = np.concatenate(epoch)
    assert len(seen) == len(set(seen.tolist())) == 50 * 8
    spread = lambda order: np.mean([np.ptp(lengths[order.indices(s)]) for s in range(order.batches_per_epoch)])
    assert spread(grouped) < spread(plain) / 4
    again = data.BatchOrder(403, 8, seed=3, lengths=lengths)
    for step in (0, 7, 49, 50, 123):  # a pure function of (seed, step): what a resumed run reads
        np.testing.assert_array_equal(again.indices(step), grouped.indices(step))
    assert not np.array_equal(grouped.indices(50), grouped.indices(0))  # a new epoch, a new order


@pytest.mark.slow
def test_cutting_a_batch_to_its_bucket_changes_no_loss(jax_checkpoint, tmp_path):
    directory = jax_checkpoint("llama")
    tokenizer = load_tokenizer(directory)
    eos, pad = data.special_ids(tokenizer, ())
    path = _write_jsonl(tmp_path / "sft.jsonl", [EXAMPLES[i] for i in (0, 1, 3, 6)])
    padded = data.load_sequences(path, "sft", tokenizer, 128, eos, pad, "--train_file")
    cut = data.cut_to_bucket(padded, 16)
    longest = int(padded.lengths.max())
    assert cut.tokens.shape == (4, -(-longest // 16) * 16) and cut.tokens.shape[1] < 128
    assert cut.target_tokens == padded.target_tokens
    settings = TrainSettings(output_dir="unused", train_file="unused", init=str(directory), warmup_steps=0)
    start = model_setup.load_starting_model(settings, None)
    model, trainable, frozen = model_setup.split_trainable(settings, start, None)
    loss = lambda s: step_lib.token_loss_sums(model, trainable, frozen, {k: v[0] for k, v in data.micro_batches(s, 1).items()})
    (padded_sum, padded_count), (cut_sum, cut_count) = loss(padded), loss(cut)
    assert float(cut_count) == float(padded_count)
    np.testing.assert_allclose(float(cut_sum), float(padded_sum), rtol=1e-5)
    assert data.cut_to_bucket(cut, 1000).tokens.shape == cut.tokens.shape  # never longer


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_a_bucketed_sft_run_stopped_after_a_save_continues_on_the_same_curve(jax_checkpoint, tmp_path):
    directory = jax_checkpoint("llama")
    train_file = _write_jsonl(tmp_path / "sft.jsonl", EXAMPLES)
    eval_file = _write_jsonl(tmp_path / "eval.jsonl", EXAMPLES[:3])
    values = dict(
        train_file=str(train_file), eval_file=str(eval_file), init=str(directory), data_mode="sft",
        max_seq_len=64, length_bucket=8, batch_size=2, train_steps=6, warmup_steps=1, learning_rate=1e-2,
        save_every=2, eval_every=3, log_every=1, seed=4,
    )
    whole = TrainSettings(output_dir=str(tmp_path / "whole"), **values)
    train(whole)

    def stop_after_step_3(step, metrics):
        if step == 3:
            raise _Stop

    resumed = TrainSettings(output_dir=str(tmp_path / "resumed"), **values)
    with pytest.raises(_Stop):
        train(resumed, on_step=stop_after_step_3)
    train(resumed)
    curve = lambda run: (tmp_path / run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in curve("whole")]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert len([r for r in records if "eval_loss" in r]) == 2
    assert curve("resumed") == curve("whole")


def test_a_negative_bucket_is_refused_by_flag():
    from pretty_jax.core.errors import UserError

    with pytest.raises(UserError, match="--length_bucket=-1 must be >= 0"):
        TrainSettings(output_dir="o", train_file="t", init="ckpt", length_bucket=-1).validate()
