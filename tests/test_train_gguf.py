"""Fine-tuning starts from a llama.cpp GGUF file too (the SFT recipe's --init is the Gemma
3 270M package's .gguf): the tokenizer comes from the file, and the export carries it."""

from __future__ import annotations

import json

from gguf_files import gguf_cache, write_gguf  # noqa: F401  (gguf_cache: a fresh view cache per test)

from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.training import TrainSettings, train

EXAMPLES = [
    {"prompt": "Translate into German: The cat sleeps.", "response": " Die Katze schläft."},
    {"prompt": "Translate into German: It rains.", "response": " Es regnet."},
]


def test_an_sft_run_from_a_gguf_file_reads_and_exports_its_tokenizer(tiny_checkpoint, tmp_path):
    hf_dir = tiny_checkpoint("llama")
    gguf = write_gguf(hf_dir, tmp_path / "tiny.gguf")
    train_file = tmp_path / "sft.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in EXAMPLES), encoding="utf-8")
    settings = TrainSettings(
        output_dir=str(tmp_path / "out"), train_file=str(train_file), init=str(gguf), data_mode="sft",
        max_seq_len=32, length_bucket=8, batch_size=2, train_steps=2, warmup_steps=0, lora_rank=2,
    )
    exported = train(settings)
    expected = load_tokenizer(hf_dir)("Die Katze schläft.").input_ids
    assert load_tokenizer(exported)("Die Katze schläft.").input_ids == expected
