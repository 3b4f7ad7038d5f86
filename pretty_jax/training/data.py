"""Training data: text files -> fixed-length token sequences -> batches in a fixed order.

Two modes:
  pretrain  a corpus, one document per line of a `.txt` file or a `{"text": ...}` line
            of a `.jsonl` file. Each document is tokenised as the tokenizer encodes it
            (with its BOS if it adds one) and followed by EOS; the documents are joined
            into one stream and cut into sequences of `seq_len` tokens that overlap by
            one, so every token but the first is a target exactly once.
  sft       `{"prompt": ..., "response": ...}` lines. A sequence is the prompt (with
            BOS if the tokenizer adds one), then the response and EOS, right-padded or
            truncated to `seq_len`; only the response tokens (and EOS) are targets.

A sequence holds, all [T] int32: tokens, attention_mask (1 = real token) and
loss_mask (1 where the token is a target, predicted from the tokens before it).

The order of batches is a pure function of (seed, step): epoch e is the permutation
drawn from `np.random.default_rng([seed, e])`, so a resumed run sees the same batches.

Length bucketing (`length_bucket` N > 0, for SFT data of uneven lengths): within each
epoch's permutation, windows of `BUCKET_WINDOW` batches are sorted by length and cut
into batches, and the batches of the epoch are shuffled; each batch is then cut to its
longest sequence rounded up to a multiple of N tokens (`cut_to_bucket`), so a step
computes on little padding and the train step compiles once per bucket (at most
seq_len / N programs). Right padding is masked and causal, so the cut changes no loss.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import numbered_lines, read_jsonl


@dataclasses.dataclass(frozen=True)
class Sequences:
    """N fixed-length sequences: tokens, attention_mask, loss_mask, each [N, T] int32.

    truncated: SFT examples longer than `seq_len`, cut to it.
    dropped: those of them left without a response token, hence not kept.
    """

    tokens: np.ndarray
    attention_mask: np.ndarray
    loss_mask: np.ndarray
    truncated: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def take(self, indices: np.ndarray) -> "Sequences":
        return Sequences(self.tokens[indices], self.attention_mask[indices], self.loss_mask[indices])

    @property
    def lengths(self) -> np.ndarray:
        """[N] real tokens of each sequence."""
        return self.attention_mask.sum(axis=1)

    @property
    def target_tokens(self) -> int:
        return int(self.loss_mask.sum())


def read_documents(path: Path, flag: str = "--train_file") -> list[str]:
    """The documents of a corpus: lines of a `.txt` file, or "text" fields of jsonl."""
    if path.suffix == ".jsonl":
        return [record["text"] for _, record in read_jsonl(path, flag, ("text",))]
    documents = [line for _, line in numbered_lines(path, flag)]
    if not documents:
        raise UserError(f"{flag}: {path} holds no documents")
    return documents


def read_sft_examples(path: Path, flag: str = "--train_file") -> list[tuple[str, str]]:
    """(prompt, response) pairs of a jsonl file."""
    return [(r["prompt"], r["response"]) for _, r in read_jsonl(path, flag, ("prompt", "response"))]


def pack_documents(documents: Sequence[Sequence[int]], eos_id: int, pad_id: int, seq_len: int) -> Sequences:
    """Joins token lists (each followed by EOS) and cuts the stream into sequences of
    `seq_len` tokens, each starting at the previous one's last token; the last one is
    right-padded. Every stream token but the first is a target once."""
    stream = np.concatenate([np.append(np.asarray(d, np.int32), eos_id) for d in documents])
    stride = seq_len - 1
    count = max(1, -(-(len(stream) - 1) // stride))
    tokens = np.full((count, seq_len), pad_id, np.int32)
    attention = np.zeros((count, seq_len), np.int32)
    for row in range(count):
        chunk = stream[row * stride : row * stride + seq_len]
        tokens[row, : len(chunk)] = chunk
        attention[row, : len(chunk)] = 1
    loss = attention.copy()
    loss[:, 0] = 0
    return Sequences(tokens, attention, loss)


def sft_sequences(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, seq_len: int
) -> Sequences:
    """One right-padded sequence per (prompt ids, response ids incl. EOS) pair; the
    loss covers the response. Longer pairs are cut at `seq_len`."""
    rows, truncated, dropped = [], 0, 0
    for prompt, response in examples:
        ids = list(prompt) + list(response)
        targets = [0] * len(prompt) + [1] * len(response)
        if len(ids) > seq_len:
            truncated += 1
            ids, targets = ids[:seq_len], targets[:seq_len]
        if not any(targets):
            dropped += 1
            continue
        rows.append((ids, targets))
    if not rows:
        raise UserError(f"no example keeps a response token within --max_seq_len={seq_len}")
    tokens = np.full((len(rows), seq_len), pad_id, np.int32)
    attention = np.zeros_like(tokens)
    loss = np.zeros_like(tokens)
    for row, (ids, targets) in enumerate(rows):
        tokens[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        loss[row, : len(ids)] = targets
    return Sequences(tokens, attention, loss, truncated=truncated, dropped=dropped)


def special_ids(tokenizer: Any, eos_ids_from_config: Sequence[int]) -> tuple[int, int]:
    """(eos id, pad id): the tokenizer's, else the model config's first EOS; padding
    falls back to EOS (padded positions are masked out anyway)."""
    eos = tokenizer.eos_token_id
    if eos is None and eos_ids_from_config:
        eos = eos_ids_from_config[0]
    if eos is None:
        raise UserError("neither the tokenizer nor the model config names an EOS token")
    pad = tokenizer.pad_token_id
    return int(eos), int(eos if pad is None else pad)


def load_sequences(
    path: Path, mode: str, tokenizer: Any, seq_len: int, eos_id: int, pad_id: int, flag: str
) -> Sequences:
    """Reads and tokenises a data file of `mode` ("pretrain" or "sft")."""
    if mode == "pretrain":
        documents = tokenizer(read_documents(path, flag))["input_ids"]
        return pack_documents(documents, eos_id, pad_id, seq_len)
    examples = read_sft_examples(path, flag)
    prompts = tokenizer([p for p, _ in examples])["input_ids"]
    responses = tokenizer([r for _, r in examples], add_special_tokens=False)["input_ids"]
    pairs = [(p, list(r) + [eos_id]) for p, r in zip(prompts, responses)]
    return sft_sequences(pairs, pad_id, seq_len)


# Length bucketing sorts this many batches' worth of a permutation at a time.
BUCKET_WINDOW = 32


class BatchOrder:
    """Which sequences make up the batch of each step: epochs of `len(data) //
    global_batch` batches, each epoch a fresh permutation (the remainder of a
    permutation waits for a later epoch).

    lengths: [num_sequences] lengths; when given, each epoch's batches hold sequences
      of similar length (see the module docstring), still each sequence once an epoch.
    """

    def __init__(self, num_sequences: int, global_batch: int, seed: int, lengths: np.ndarray | None = None):
        if num_sequences < global_batch:
            raise UserError(
                f"the training data has {num_sequences} sequences, fewer than one batch of "
                f"--batch_size x --grad_accum_steps = {global_batch}"
            )
        self.num_sequences = num_sequences
        self.global_batch = global_batch
        self.seed = seed
        self.lengths = lengths
        self.batches_per_epoch = num_sequences // global_batch
        self._epoch_permutation: tuple[int, np.ndarray] | None = None

    def position(self, step: int) -> dict[str, int]:
        """Where step `step` (0-based) reads: its epoch and batch within the epoch."""
        return {"epoch": step // self.batches_per_epoch, "batch_in_epoch": step % self.batches_per_epoch}

    def indices(self, step: int) -> np.ndarray:
        position = self.position(step)
        start = position["batch_in_epoch"] * self.global_batch
        return self._permutation(position["epoch"])[start : start + self.global_batch]

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch_permutation is None or self._epoch_permutation[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            permutation = rng.permutation(self.num_sequences)
            if self.lengths is not None:
                permutation = self._grouped_by_length(permutation, rng)
            self._epoch_permutation = (epoch, permutation)
        return self._epoch_permutation[1]


    def _grouped_by_length(self, permutation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`permutation` reordered so that each batch holds sequences of similar length:
        its used part (whole batches) sorted by length window by window, then the
        batches shuffled; the remainder stays at the end."""
        batch, used = self.global_batch, self.batches_per_epoch * self.global_batch
        window = batch * BUCKET_WINDOW
        head = permutation[:used].copy()
        for start in range(0, used, window):
            chunk = head[start : start + window]
            head[start : start + window] = chunk[np.argsort(self.lengths[chunk], kind="stable")]
        batches = head.reshape(self.batches_per_epoch, batch)[rng.permutation(self.batches_per_epoch)]
        return np.concatenate([batches.reshape(-1), permutation[used:]])


def cut_to_bucket(data: Sequences, multiple: int) -> Sequences:
    """`data` without the padding columns past its longest sequence, rounded up to a
    multiple of `multiple` tokens (never longer than it was)."""
    longest = int(data.lengths.max())
    width = min(data.tokens.shape[1], -(-longest // multiple) * multiple)
    return Sequences(data.tokens[:, :width], data.attention_mask[:, :width], data.loss_mask[:, :width])


def micro_batches(data: Sequences, accum_steps: int) -> dict[str, np.ndarray]:
    """The arrays of one update, [A, b, T]: A micro-batches of b sequences."""
    return {
        name: getattr(data, name).reshape(accum_steps, -1, data.tokens.shape[1])
        for name in ("tokens", "attention_mask", "loss_mask")
    }


def eval_batches(data: Sequences, batch_size: int, length_bucket: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The whole of `data` in batches of [1, b, T]; the last one is filled with empty
    rows (no targets), so every batch has one shape and compiles once. With
    `length_bucket` > 0 the sequences go by length and each batch is cut to its bucket."""
    order = np.argsort(data.lengths, kind="stable") if length_bucket else np.arange(len(data))
    for start in range(0, len(data), batch_size):
        chunk = data.take(order[start : start + batch_size])
        if length_bucket:
            chunk = cut_to_bucket(chunk, length_bucket)
        missing = batch_size - len(chunk)
        arrays = {}
        for name in ("tokens", "attention_mask", "loss_mask"):
            array = getattr(chunk, name)
            arrays[name] = np.concatenate([array, np.zeros((missing, array.shape[1]), np.int32)])[None]
        yield arrays
