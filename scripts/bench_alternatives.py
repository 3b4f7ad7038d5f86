"""Cost of contrastive decoding and proxy tuning against the plain foundation, on the
model organism's test set: the same examples, greedy, one line each.

    python scripts/bench_alternatives.py --organism_dir=~/.cache/pretty_jax/organism

Needs the organism and its small pair (`run --flagfile=configs/alternatives_demo.cfg`
builds both). Each system is run once to compile, then plain and each alternative
alternate (A B A B ...) `--rounds` times; the best time of each counts. Prints, per
system, decode seconds, tokens generated, and time and time per token relative to the
plain foundation. Last line: `alternatives contrastive_ratio=X proxy_ratio=Y`.
"""

from __future__ import annotations

import time
from pathlib import Path

from absl import app, flags

from pretty_jax.checkpoints.loading import load_model, load_tokenizer_of
from pretty_jax.engine.generator import DecodeConfig, Generator, System
from pretty_jax.engine.logits import Contrastive, ProxyTuning
from pretty_jax.tasks.registry import get_task
from pretty_jax.organism.build import Organism, register_varic
from pretty_jax.organism.proxy_pair import planned_proxy_pair

_ORGANISM_DIR = flags.DEFINE_string("organism_dir", str(Path.home() / ".cache" / "pretty_jax" / "organism"),
                                    "A built organism with its small pair.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed A B rounds.")
_BATCH = flags.DEFINE_integer("batch_size", 50, "Slots of the pool.")
_COPIES = flags.DEFINE_integer("copies", 4, "Times the test set is decoded per run (longer runs, steadier times).")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 40, "Tokens per answer at most.")


def _prompts(organism: Organism, tokenizer, target: str) -> list[list[int]]:
    english = (organism.flores / "eng.test").read_text(encoding="utf-8").splitlines()
    template = get_task("translation").default_template
    prompts = [tokenizer(template.format(src_lang="English", tgt_lang=target, source=s)).input_ids for s in english]
    return prompts * _COPIES.value


def main(argv) -> None:
    del argv
    register_varic()
    organism = Organism(Path(_ORGANISM_DIR.value).expanduser())
    pair = planned_proxy_pair(organism)
    foundation = load_model(organism.foundation, "float32")
    tuned, base = load_model(pair.sft, "float32"), load_model(pair.foundation, "float32")
    tokenizer = load_tokenizer_of(str(organism.foundation))
    prompts, wrong = _prompts(organism, tokenizer, "Varic"), _prompts(organism, tokenizer, "English")
    config = DecodeConfig(max_new_tokens=_MAX_NEW_TOKENS.value, stop_strings=("\n",))
    systems = {
        "plain": (Generator(foundation, tokenizer, batch_size=_BATCH.value), prompts),
        "language-contrastive": (Generator(foundation, tokenizer, batch_size=_BATCH.value,
                                           system=System(Contrastive((0.5,)), (foundation, foundation))),
                                 list(zip(prompts, wrong))),
        "proxy": (Generator(foundation, tokenizer, batch_size=_BATCH.value,
                            system=System(ProxyTuning(), (foundation, tuned, base))),
                  [(p, p, p) for p in prompts]),
    }

    def timed(name: str) -> tuple[float, int]:
        generator, inputs = systems[name]
        start = time.perf_counter()
        results = generator.generate(inputs, None, config)
        return time.perf_counter() - start, sum(len(r.tokens) for r in results)

    for name in systems:  # compile
        timed(name)
    best = {name: (float("inf"), 0) for name in systems}
    for _ in range(_ROUNDS.value):
        for name in ("plain", "language-contrastive", "plain", "proxy"):
            seconds, tokens = timed(name)
            best[name] = min(best[name], (seconds, tokens))
    plain_seconds, plain_tokens = best["plain"]
    print(f"{'system':<22} {'seconds':>8} {'tokens':>7} {'time x':>7} {'per token x':>12}")
    for name, (seconds, tokens) in best.items():
        print(f"{name:<22} {seconds:8.2f} {tokens:7d} {seconds / plain_seconds:7.2f} "
              f"{(seconds / tokens) / (plain_seconds / plain_tokens):12.2f}")
    print(f"alternatives contrastive_ratio={best['language-contrastive'][0] / plain_seconds:.2f} "
          f"proxy_ratio={best['proxy'][0] / plain_seconds:.2f}")


if __name__ == "__main__":
    app.run(main)
