"""`Generator.generate`: prompts with prior tokens in, continuations out.

The host side of decoding: validates and (if needed) truncates the inputs, then
either keeps a pool of slots busy (greedy and sampling: continuous batching,
`continuous.py`) or groups the inputs into fixed-size batches with bucketed lengths
and runs the on-device loop of `decode.py` or `beam_search.py` on each (chosen by the
strategy's type, `LOOPS`), and turns the `DecodeOutput` buffers back into per-example
results.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Literal, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import bucket_length, left_pad
from pretty_jax.engine.beam_search import beam_decode
from pretty_jax.engine.continuous import PoolStats, run_pool
from pretty_jax.engine.decode import FINISH_REASONS, DecodeOutput, LoopStatics, decode
from pretty_jax.engine.stopping import StopStrings
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling, Strategy
from pretty_jax.models import Model


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """What to generate.

    max_len: cap on prompt + prior + max_new_tokens; default the model's
      `max_position_embeddings` (none for ALiBi models).
    overflow: what to do with inputs longer than `max_len - max_new_tokens`:
      "truncate" drops prompt tokens from the left (keeping a leading BOS and the
      whole prior) and logs how many examples it cut; "error" refuses them.
    include_prior: results start with the prior tokens instead of after them.
    """

    max_new_tokens: int = 64
    strategy: Strategy = Greedy()
    stop_strings: tuple[str, ...] = ()
    max_len: int | None = None
    overflow: Literal["truncate", "error"] = "truncate"
    return_logprobs: bool = False
    include_prior: bool = False
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Generation:
    """One example's result. `tokens` ends with the EOS / stop token when there was
    one; `text` (with a tokenizer) is cut before the first stop string."""

    tokens: tuple[int, ...]
    finish_reason: str
    text: str | None = None
    logprobs: tuple[float, ...] | None = None
    score: float | None = None
    truncated_tokens: int = 0


def _token_loop(model: Model, tokens, mask, example_ids, seed, stop_tables, strategy, statics, mesh) -> DecodeOutput:
    """Greedy or sampling: one token per row per step (decode.py)."""
    return decode(model.graphdef, model.params, tokens, mask, example_ids, seed, stop_tables,
                  strategy=strategy, settings=statics, mesh=mesh)


def _beam_loop(model: Model, tokens, mask, example_ids, seed, stop_tables, strategy, statics, mesh) -> DecodeOutput:
    """Beam search (beam_search.py); deterministic, so example ids and seed are unused."""
    del example_ids, seed
    return beam_decode(model.graphdef, model.params, tokens, mask, stop_tables,
                       search=strategy, settings=statics, mesh=mesh)


# The on-device loop of each strategy type; every loop returns a `DecodeOutput`.
LOOPS: dict[type, Callable[..., DecodeOutput]] = {Greedy: _token_loop, Sampling: _token_loop, BeamSearch: _beam_loop}


class Generator:
    """Decodes with one model on one mesh; compiled programs are reused across calls.

    batch_size: rows per device batch (a multiple of the mesh's `data` size): the slots
      of the continuous-batching pool, or the rows of a static batch (whose last batch
      is padded with copies of a real row whose results are dropped).
    continuous: greedy and sampling keep `batch_size` slots busy, refilling a finished
      row's slot with the next waiting example (continuous.py); False decodes static
      batches, each until its longest row ends. Beam search always runs static batches.
      Per example the results are the same either way.
    """

    def __init__(self, model: Model, tokenizer=None, mesh: Mesh | None = None, batch_size: int = 8,
                 continuous: bool = True):
        data = 1 if mesh is None else mesh.shape[parallel.DATA]
        if batch_size < 1 or batch_size % data:
            raise UserError(
                f"batch_size={batch_size} must be a positive multiple of the mesh's data axis ({data} devices)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.mesh = mesh
        self.batch_size = batch_size
        self.continuous = continuous
        self.stats = PoolStats(slots=batch_size)
        tokens = model.config.special_tokens
        self.pad_id = tokens.pad_token_id if tokens.pad_token_id is not None else (tokens.eos_token_ids or (0,))[0]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        priors: Sequence[Sequence[int]] | None = None,
        config: DecodeConfig = DecodeConfig(),
        example_ids: Sequence[int] | None = None,
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """Continues each prompt after its prior tokens (0..k per example).

        example_ids: integers that seed each example's sampling (default: positions in
          `prompts`); give stable ids so that a resumed or re-batched run samples alike.
        on_result(index, generation): called as each example finishes (in any order
          with continuous batching), e.g. to save or count it.
        """
        priors = [[] for _ in prompts] if priors is None else priors
        example_ids = list(range(len(prompts))) if example_ids is None else list(example_ids)
        if not (len(prompts) == len(priors) == len(example_ids)):
            raise UserError(f"{len(prompts)} prompts, {len(priors)} priors and {len(example_ids)} ids differ in number")
        self._validate(prompts, priors, example_ids)
        inputs, dropped = self._fit_context(prompts, priors, example_ids, config)
        stop = self._stop_strings(config.stop_strings)
        if LOOPS.get(type(config.strategy)) is None:
            raise UserError(f"strategy={config.strategy!r}: use Greedy(), Sampling(...) or BeamSearch(...)")
        if self.continuous and LOOPS[type(config.strategy)] is _token_loop:
            return self._generate_continuous(inputs, priors, example_ids, dropped, config, stop, on_result)
        results: list[Generation] = []
        for start in range(0, len(inputs), self.batch_size):
            rows = list(range(start, min(start + self.batch_size, len(inputs))))
            batch = self._generate_batch(
                [inputs[r] for r in rows],
                [priors[r] for r in rows],
                [example_ids[r] for r in rows],
                [dropped[r] for r in rows],
                config,
                stop,
            )
            for r, generation in zip(rows, batch):
                if on_result is not None:
                    on_result(r, generation)
            results += batch
        return results

    def _generate_continuous(self, inputs, priors, example_ids, dropped, config, stop, on_result) -> list[Generation]:
        results: list[Generation | None] = [None] * len(inputs)

        def done(index: int, out: DecodeOutput) -> None:
            results[index] = self._result(
                out.tokens[0, : out.lengths[0]], int(out.finish[0]), priors[index], dropped[index], config, stop,
                None if out.logprobs is None else out.logprobs[0, : out.lengths[0]], None,
            )
            if on_result is not None:
                on_result(index, results[index])

        before = dataclasses.replace(self.stats, programs=set(self.stats.programs))
        run_pool(self.model, self.mesh, self.batch_size, inputs, example_ids, config.seed,
                 self._stop_tables(stop), config.strategy, self._statics(0, config), self.stats, done)
        steps = self.stats.steps - before.steps
        busy = self.stats.busy_slot_steps - before.busy_slot_steps
        logging.info(
            "continuous batching: %d examples (%d prefilled, the rest prefixes of them) in %d steps of %d slots "
            "(utilisation %.2f); %d programs so far (%d built now: compiled or read from the compilation cache)",
            len(inputs), self.stats.prefilled - before.prefilled, steps, self.batch_size,
            busy / max(1, steps * self.batch_size), len(self.stats.programs), self.stats.built - before.built,
        )
        return results

    def _statics(self, prefill_len: int, config: DecodeConfig) -> LoopStatics:
        return LoopStatics(
            max_new_tokens=config.max_new_tokens,
            eos_ids=tuple(self.model.config.special_tokens.eos_token_ids),
            pad_id=self.pad_id,
            cache_len=prefill_len + config.max_new_tokens,
            return_logprobs=config.return_logprobs,
        )

    @staticmethod
    def _stop_tables(stop: StopStrings | None):
        return None if stop is None else (jax.numpy.asarray(stop.tables), jax.numpy.asarray(stop.accept))

    def _validate(self, prompts, priors, example_ids) -> None:
        vocab = self.model.config.vocab_size
        for prompt, prior, example in zip(prompts, priors, example_ids):
            if len(prompt) == 0:
                raise UserError(f"example {example}: empty prompt")
            for name, ids in (("prompt", prompt), ("prior", prior)):
                bad = [i for i in ids if not 0 <= int(i) < vocab]
                if bad:
                    raise UserError(
                        f"example {example}: {name} token id {bad[0]} is outside the vocabulary [0, {vocab})"
                    )

    def _fit_context(self, prompts, priors, example_ids, config: DecodeConfig):
        """prompt + prior per example, truncated from the left to fit the context."""
        max_len = config.max_len or getattr(self.model.config, "max_position_embeddings", None)
        budget = None if max_len is None else max_len - config.max_new_tokens
        if budget is not None and budget < 1:
            raise UserError(f"max_new_tokens={config.max_new_tokens} leaves no room in max_len={max_len}")
        bos = self.model.config.special_tokens.bos_token_id
        inputs, dropped = [], []
        for prompt, prior, example in zip(prompts, priors, example_ids):
            prompt, prior = [int(t) for t in prompt], [int(t) for t in prior]
            excess = 0 if budget is None else len(prompt) + len(prior) - budget
            if excess > 0:
                keep_bos = int(prompt[0] == bos)
                if config.overflow == "error" or len(prompt) - keep_bos <= excess:
                    raise UserError(
                        f"example {example}: prompt ({len(prompt)}) + prior ({len(prior)}) + "
                        f"max_new_tokens ({config.max_new_tokens}) exceed max_len={max_len}"
                        + ("" if config.overflow == "error" else "; even a truncated prompt does not fit")
                    )
                prompt = prompt[:keep_bos] + prompt[keep_bos + excess :]
            inputs.append(prompt + prior)
            dropped.append(max(excess, 0))
        if any(dropped):
            logging.warning(
                "truncated %d of %d inputs from the left to fit max_len=%s (%d tokens dropped)",
                sum(d > 0 for d in dropped), len(inputs), max_len, sum(dropped),
            )
        return inputs, dropped

    def _stop_strings(self, stop_strings: tuple[str, ...]) -> StopStrings | None:
        if not stop_strings:
            return None
        if self.tokenizer is None:
            raise UserError("stop strings need the model's tokenizer")
        return StopStrings.for_tokenizer(stop_strings, self.tokenizer, self.model.config.vocab_size)

    def _generate_batch(self, inputs, priors, example_ids, dropped, config, stop) -> list[Generation]:
        loop = LOOPS[type(config.strategy)]
        real = len(inputs)
        padding = self.batch_size - real
        inputs = inputs + [inputs[0]] * padding
        ids = np.array(example_ids + [example_ids[0]] * padding, np.int32)
        prefill_len = bucket_length(max(len(x) for x in inputs))
        tokens, mask, _ = left_pad(inputs, self.pad_id, prefill_len)
        statics = self._statics(prefill_len, config)
        stop_tables = self._stop_tables(stop)
        out = parallel.to_host(loop(
            self.model, parallel.device_batch(self.mesh, tokens), parallel.device_batch(self.mesh, mask),
            parallel.device_batch(self.mesh, ids), np.int32(config.seed), stop_tables,
            config.strategy, statics, self.mesh,
        ))
        return [
            self._result(
                out.tokens[r, : out.lengths[r]], int(out.finish[r]), priors[r], dropped[r], config, stop,
                None if out.logprobs is None else out.logprobs[r, : out.lengths[r]],
                None if out.scores is None else float(out.scores[r]),
            )
            for r in range(real)
        ]

    def _result(self, tokens, finish, prior, dropped, config, stop, logprobs, score) -> Generation:
        tokens = tuple(int(t) for t in tokens)
        if config.include_prior:
            tokens = tuple(prior) + tokens
        reason = FINISH_REASONS[finish]
        text = None
        if self.tokenizer is not None:
            text = self.tokenizer.decode(list(tokens), skip_special_tokens=True)
            if stop is not None:
                text, found = stop.trim(text)
                reason = "stop" if found and reason == "length" else reason
        return Generation(
            tokens=tokens,
            finish_reason=reason,
            text=text,
            logprobs=None if logprobs is None else tuple(float(x) for x in logprobs),
            score=score,
            truncated_tokens=dropped,
        )
