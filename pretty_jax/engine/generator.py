"""`Generator.generate`: prompts with prior tokens in, continuations out.

The host side of decoding: validates and (if needed) truncates the inputs, groups
them into fixed-size batches with bucketed lengths (so a long run compiles a handful
of programs, not one per batch), places them on the mesh, runs the on-device loop of
`decode.py` or `beam_search.py`, and turns the buffers back into per-example results.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.beam_search import beam_decode
from pretty_jax.engine.decode import FINISH_REASONS, DecodeSettings, decode
from pretty_jax.engine.stopping import StopStrings
from pretty_jax.engine.strategies import BeamSearch, Greedy, Strategy
from pretty_jax.models import Model

MIN_BUCKET = 16


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


def bucket_length(length: int) -> int:
    """Padded prefill length: powers of two from 16 to 512, then multiples of 256."""
    if length <= 512:
        return max(MIN_BUCKET, 1 << (length - 1).bit_length())
    return -(-length // 256) * 256


class Generator:
    """Decodes with one model on one mesh; compiled programs are reused across calls.

    batch_size: rows per device batch (a multiple of the mesh's `data` size); the last
      batch is padded with copies of a real row whose results are dropped.
    """

    def __init__(self, model: Model, tokenizer=None, mesh: Mesh | None = None, batch_size: int = 8):
        data = 1 if mesh is None else mesh.shape[parallel.DATA]
        if batch_size < 1 or batch_size % data:
            raise UserError(f"--batch_size={batch_size} must be a positive multiple of --mesh_data={data}")
        self.model = model
        self.tokenizer = tokenizer
        self.mesh = mesh
        self.batch_size = batch_size
        self._stop_cache: dict[tuple[str, ...], StopStrings] = {}
        tokens = model.config.special_tokens
        self.pad_id = tokens.pad_token_id if tokens.pad_token_id is not None else (tokens.eos_token_ids or (0,))[0]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        priors: Sequence[Sequence[int]] | None = None,
        config: DecodeConfig = DecodeConfig(),
        example_ids: Sequence[int] | None = None,
    ) -> list[Generation]:
        """Continues each prompt after its prior tokens (0..k per example).

        example_ids: integers that seed each example's sampling (default: positions in
          `prompts`); give stable ids so that a resumed or re-batched run samples alike.
        """
        priors = [[] for _ in prompts] if priors is None else priors
        example_ids = list(range(len(prompts))) if example_ids is None else list(example_ids)
        if not (len(prompts) == len(priors) == len(example_ids)):
            raise UserError(f"{len(prompts)} prompts, {len(priors)} priors and {len(example_ids)} ids differ in number")
        self._validate(prompts, priors, example_ids)
        inputs, dropped = self._fit_context(prompts, priors, example_ids, config)
        stop = self._stop_strings(config.stop_strings)
        results: list[Generation] = []
        for start in range(0, len(inputs), self.batch_size):
            rows = list(range(start, min(start + self.batch_size, len(inputs))))
            results += self._generate_batch(
                [inputs[r] for r in rows],
                [priors[r] for r in rows],
                [example_ids[r] for r in rows],
                [dropped[r] for r in rows],
                config,
                stop,
            )
        return results

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
            raise UserError(f"--max_new_tokens={config.max_new_tokens} leaves no room in max_len={max_len}")
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
        if stop_strings not in self._stop_cache:
            self._stop_cache[stop_strings] = StopStrings.for_tokenizer(
                stop_strings, self.tokenizer, self.model.config.vocab_size
            )
        return self._stop_cache[stop_strings]

    def _generate_batch(self, inputs, priors, example_ids, dropped, config, stop) -> list[Generation]:
        real = len(inputs)
        padding = self.batch_size - real
        inputs = inputs + [inputs[0]] * padding
        ids = np.array(example_ids + [example_ids[0]] * padding, np.int32)
        prefill_len = bucket_length(max(len(x) for x in inputs))
        tokens, mask, _ = left_pad(inputs, self.pad_id, prefill_len)
        settings = DecodeSettings(
            max_new_tokens=config.max_new_tokens,
            eos_ids=tuple(self.model.config.special_tokens.eos_token_ids),
            pad_id=self.pad_id,
            cache_len=prefill_len + config.max_new_tokens,
            return_logprobs=config.return_logprobs,
        )
        stop_tables = None if stop is None else (jax.numpy.asarray(stop.tables), jax.numpy.asarray(stop.accept))
        batch = parallel.device_batch(self.mesh, tokens), parallel.device_batch(self.mesh, mask)
        strategy = config.strategy
        if isinstance(strategy, BeamSearch) and strategy.num_beams > 1:
            out = beam_decode(
                self.model.graphdef, self.model.params, *batch, stop_tables,
                search=strategy, settings=settings, mesh=self.mesh,
            )
            out_tokens, lengths, finish, scores = parallel.to_host(out)
            logprobs = None
        else:
            strategy = Greedy() if isinstance(strategy, BeamSearch) else strategy
            out = decode(
                self.model.graphdef, self.model.params, *batch, parallel.device_batch(self.mesh, ids),
                np.int32(config.seed), stop_tables, strategy=strategy, settings=settings, mesh=self.mesh,
            )
            out_tokens, lengths, finish, logprobs = parallel.to_host(out)
            scores = None
        return [
            self._result(
                out_tokens[r, : lengths[r]], int(finish[r]), priors[r], dropped[r], config, stop,
                None if not config.return_logprobs or logprobs is None else logprobs[r, : lengths[r]],
                None if scores is None else float(scores[r]),
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
