"""`Generator.generate`: prompts with prior tokens in, continuations out.

The host side of decoding: validates and (if needed) truncates the inputs, builds the
`Engine` of the call (engine.py: the model graphs, logits rule, strategy and pool
shape), and runs it — greedy and sampling in a pool of slots (pool.py: continuous
batching, or static batches when `continuous=False`), beam search in static batches
(beam_search.py) — then turns the `DecodeOutput` buffers into per-example results.

A system may read several streams per step (logits.py): `Generator(..., system=
System(rule, models))` with one model per stream; each prompt is then a tuple of token
lists, one per stream, and the prior follows the prompt in every stream.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Literal, Sequence

import numpy as np
from jax.sharding import Mesh

from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.beam_search import beam_search
from pretty_jax.engine.engine import FINISH_LENGTH, FINISH_REASONS, DecodeOutput, Engine, PoolShape
from pretty_jax.engine.logits import LogitsRule, OneModel
from pretty_jax.engine.pool import Job, PoolStats, Request, ring_length, run_pool
from pretty_jax.engine.scheduler import prefill_length
from pretty_jax.engine.stopping import StopStrings, StopTables
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling, Strategy
from pretty_jax.models import Model


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """What to generate.

    max_new_tokens: the most tokens of each example's answer. With `count_prior`
      (the default) the prior tokens are the answer's first tokens and count within
      it: an example with a k-token prior generates at most max_new_tokens - k tokens,
      so prior + continuation never exceed max_new_tokens and examples with and
      without priors get the same budget. A prior longer than max_new_tokens is cut
      to it (logged) and nothing is generated after it (finish reason "length").
      count_prior=False generates up to max_new_tokens after any prior, as HF
      `generate` does after input ids that end with the prior.
    max_len: cap on prompt + prior + new tokens; default the model's
      `max_position_embeddings` (none for ALiBi models).
    overflow: what to do with inputs that leave too little room in `max_len` for
      their new tokens: "truncate" drops prompt tokens from the left (keeping a
      leading BOS and the whole prior) and logs how many examples it cut; "error"
      refuses them.
    """

    max_new_tokens: int = 64
    strategy: Strategy = Greedy()
    stop_strings: tuple[str, ...] = ()
    max_len: int | None = None
    overflow: Literal["truncate", "error"] = "truncate"
    return_logprobs: bool = False
    seed: int = 0
    count_prior: bool = True


@dataclasses.dataclass(frozen=True)
class Generation:
    """One example's result: the prior it decoded after and its continuation.

    prior: the prior tokens (cut to the budget when they exceed it).
    tokens: the generated continuation, ending with the EOS / stop token when there was one.
    text: (with a tokenizer) the continuation's text, cut before the first stop string.
    answer_text: (with a tokenizer) the prior and the continuation decoded together (so
      spacing between them is the tokenizer's), cut before the first stop string; the
      finish reason is "stop" when one is found there.
    logprobs: per continuation token.
    """

    tokens: tuple[int, ...]
    finish_reason: str
    text: str | None = None
    logprobs: tuple[float, ...] | None = None
    score: float | None = None
    truncated_tokens: int = 0
    prior: tuple[int, ...] = ()
    answer_text: str | None = None

    @property
    def answer_tokens(self) -> tuple[int, ...]:
        """The prior followed by the continuation."""
        return self.prior + self.tokens


@dataclasses.dataclass(frozen=True)
class System:
    """What decodes: one model per stream and the rule that combines their logits
    (logits.py). The plain system is `System(OneModel(), (model,))`."""

    rule: LogitsRule
    models: tuple[Model, ...]

    def __post_init__(self):
        if len(self.models) != self.rule.streams:
            raise UserError(f"{type(self.rule).__name__} reads {self.rule.streams} models' logits, "
                            f"{len(self.models)} given")
        vocab = {m.config.vocab_size for m in self.models}
        if len(vocab) > 1:
            raise UserError(f"the models of one system must share a vocabulary; their sizes are {sorted(vocab)}")


@dataclasses.dataclass(frozen=True)
class _Input:
    """One example after validation and truncation: its tokens in each stream (prompt
    + prior), its prior (cut to the budget), id and limit of new tokens, and the
    prompt tokens cut."""

    tokens: tuple[tuple[int, ...], ...]
    prior: tuple[int, ...]
    example_id: int
    limit: int
    truncated: int


class Generator:
    """Decodes with one system on one mesh; compiled programs are reused across calls.

    model: the model of a one-stream system (its tokenizer's model).
    batch_size: slots of the pool (greedy, sampling) or rows of a static batch (beam
      search, whose last batch is padded with copies of a real row whose results are
      dropped); a multiple of the mesh's `data` size.
    continuous: greedy and sampling refill a finished row's slot with the next waiting
      example; False admits static batches in input order, each until its longest row
      ends (the same token step: per example the results are identical).
    system: a system of several streams (`System`), instead of `model` alone.
    """

    def __init__(self, model: Model, tokenizer=None, mesh: Mesh | None = None, batch_size: int = 8,
                 continuous: bool = True, system: System | None = None):
        data = 1 if mesh is None else mesh.shape[parallel.DATA]
        if batch_size < 1 or batch_size % data:
            raise UserError(
                f"batch_size={batch_size} must be a positive multiple of the mesh's data axis ({data} devices)"
            )
        self.model, self.tokenizer, self.mesh = model, tokenizer, mesh
        self.batch_size, self.continuous = batch_size, continuous
        self.system = system or System(OneModel(), (model,))
        self.stats = PoolStats(slots=batch_size)
        # StopStrings by stop strings, built on first use: decoding a large vocabulary
        # takes seconds, and a Generator decodes many batches with the same strings.
        self._stops: dict[tuple[str, ...], StopStrings] = {}
        tokens = model.config.special_tokens
        self.pad_id = tokens.pad_token_id if tokens.pad_token_id is not None else (tokens.eos_token_ids or (0,))[0]

    def generate(
        self,
        prompts: Sequence,
        priors: Sequence[Sequence[int]] | None = None,
        config: DecodeConfig = DecodeConfig(),
        example_ids: Sequence[int] | None = None,
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """Continues each prompt after its prior tokens (0..k per example), each
        example within its budget (`DecodeConfig.max_new_tokens` and `count_prior`).

        prompts: token ids per example; for a system of several streams, a tuple of
          token-id lists per example, one per stream.
        example_ids: integers that seed each example's sampling (default: positions in
          `prompts`); give stable ids so that a resumed or re-batched run samples alike.
        on_result(index, generation): called as each example finishes (in any order
          with continuous batching), e.g. to save or count it.
        """
        if not isinstance(config.strategy, (Greedy, Sampling, BeamSearch)):
            raise UserError(f"strategy={config.strategy!r}: use Greedy(), Sampling(...) or BeamSearch(...)")
        priors = [[] for _ in prompts] if priors is None else priors
        example_ids = list(range(len(prompts))) if example_ids is None else list(example_ids)
        if not (len(prompts) == len(priors) == len(example_ids)):
            raise UserError(f"{len(prompts)} prompts, {len(priors)} priors and {len(example_ids)} ids differ in number")
        inputs = self._fit_context(self._validate(prompts, priors, example_ids), config)
        stop = self._stop_strings(config.stop_strings)
        results: list[Generation | None] = [None] * len(inputs)

        def done(index: int, out: DecodeOutput, row: int = 0) -> None:
            results[index] = self._result(inputs[index], out, row, stop)
            if on_result is not None:
                on_result(index, results[index])

        stops = StopTables.of(stop, self.model.config.vocab_size)
        empty = DecodeOutput(tokens=np.zeros((1, 0), np.int32), lengths=np.zeros(1, np.int32),
                             finish=np.full(1, FINISH_LENGTH, np.int32),
                             logprobs=np.zeros((1, 0), np.float32) if config.return_logprobs else None)
        for index in (i for i, x in enumerate(inputs) if x.limit == 0):  # the prior fills the budget
            done(index, empty)
        rows = [i for i, x in enumerate(inputs) if x.limit > 0]

        def done_row(k: int, out: DecodeOutput, row: int = 0) -> None:
            done(rows[k], out, row)

        if rows:
            decode = self._beam_batches if isinstance(config.strategy, BeamSearch) else self._pool
            decode([inputs[i] for i in rows], config, stops, done_row)
        return results

    # -- running the engine ----------------------------------------------------------

    def _engine(self, config: DecodeConfig, ring_len: int, num_stops: int) -> Engine:
        shape = PoolShape(
            slots=self.batch_size, max_new_tokens=config.max_new_tokens, ring_len=ring_len,
            eos_ids=tuple(self.model.config.special_tokens.eos_token_ids), pad_id=self.pad_id,
            num_stops=num_stops, return_logprobs=config.return_logprobs,
        )
        return Engine(tuple(m.graph for m in self.system.models), self.system.rule, config.strategy, shape, self.mesh)

    @property
    def _params(self) -> tuple:
        return tuple(m.params for m in self.system.models)

    def _pool(self, inputs: list[_Input], config: DecodeConfig, stops: StopTables, done) -> None:
        requests = [Request(x.tokens, x.example_id, x.limit) for x in inputs]
        engine = self._engine(config, ring_length(requests, config.max_new_tokens), stops.num_stops)
        before = dataclasses.replace(self.stats, programs=set(self.stats.programs))
        run_pool(engine, self._params, Job(requests, stops, config.seed, self.continuous), self.stats, done)
        steps = self.stats.steps - before.steps
        busy = self.stats.busy_slot_steps - before.busy_slot_steps
        logging.info(
            "decode pool: %d examples (%d prefilled, the rest prefixes of them) in %d steps of %d slots "
            "(utilisation %.2f); %d programs so far (%d built now: compiled or read from the compilation cache)",
            len(inputs), self.stats.prefilled - before.prefilled, steps, self.batch_size,
            busy / max(1, steps * self.batch_size), len(self.stats.programs), self.stats.built - before.built,
        )

    def _beam_batches(self, inputs: list[_Input], config: DecodeConfig, stops: StopTables, done) -> None:
        """Static batches of `batch_size` rows (the last padded with copies of its
        first row), each prefilled in every stream and searched until it ends."""
        engine = self._engine(config, 0, stops.num_stops)
        put = lambda a: parallel.device_batch(self.mesh, a)  # noqa: E731
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size]
            rows = batch + [batch[0]] * (self.batch_size - len(batch))
            blocks = []
            for s, params in enumerate(self._params):
                sequences = [x.tokens[s] for x in rows]
                tokens, mask, _ = left_pad(sequences, self.pad_id, prefill_length(max(len(x) for x in sequences)))
                blocks.append(engine.prefill(s, params, put(tokens), put(mask)))
            limits = put(np.array([x.limit for x in rows], np.int32))
            out = parallel.to_host(beam_search(engine, self._params, tuple(blocks), limits, stops))
            for row in range(len(batch)):
                done(start + row, out, row)

    # -- inputs ----------------------------------------------------------------------

    def _validate(self, prompts, priors, example_ids) -> list[tuple[tuple[tuple[int, ...], ...], tuple[int, ...], int]]:
        """(prompt of each stream, prior, id) per example, refusing empty prompts, a
        wrong number of streams and ids outside the vocabulary, naming the example."""
        vocab, streams = self.model.config.vocab_size, self.system.rule.streams
        checked = []
        for prompt, prior, example in zip(prompts, priors, example_ids):
            stream_prompts = tuple(prompt) if streams > 1 else (prompt,)
            if len(stream_prompts) != streams or any(np.ndim(p) != 1 for p in stream_prompts):
                raise UserError(f"example {example}: {len(stream_prompts)} prompts for a system of {streams} streams")
            stream_prompts = tuple(tuple(int(t) for t in p) for p in stream_prompts)
            prior = tuple(int(t) for t in prior)
            for name, ids in [("prompt", p) for p in stream_prompts] + [("prior", prior)]:
                if name == "prompt" and not ids:
                    raise UserError(f"example {example}: empty prompt")
                bad = [i for i in ids if not 0 <= i < vocab]
                if bad:
                    raise UserError(
                        f"example {example}: {name} token id {bad[0]} is outside the vocabulary [0, {vocab})"
                    )
            checked.append((stream_prompts, prior, example))
        return checked

    def _fit_context(self, checked, config: DecodeConfig) -> list[_Input]:
        """prompt + prior per example and stream, the prior cut to the budget (with
        `count_prior`), the prompt truncated from the left so that the example's new
        tokens fit the context too."""
        if config.max_new_tokens < 1:
            raise UserError(f"max_new_tokens={config.max_new_tokens} must be >= 1")
        max_len = config.max_len or getattr(self.model.config, "max_position_embeddings", None)
        if max_len is not None and max_len - config.max_new_tokens < 1:
            raise UserError(f"max_new_tokens={config.max_new_tokens} leaves no room in max_len={max_len}")
        bos = self.model.config.special_tokens.bos_token_id
        inputs, priors_cut = [], 0
        for stream_prompts, prior, example in checked:
            if config.count_prior:
                priors_cut += len(prior) > config.max_new_tokens
                prior = prior[: config.max_new_tokens]
            new_tokens = config.max_new_tokens - len(prior) if config.count_prior else config.max_new_tokens
            fitted, truncated = [], 0
            for prompt in stream_prompts:
                excess = 0 if max_len is None else len(prompt) + len(prior) + new_tokens - max_len
                if excess > 0:
                    keep_bos = int(prompt[0] == bos)
                    if config.overflow == "error" or len(prompt) - keep_bos <= excess:
                        raise UserError(
                            f"example {example}: prompt ({len(prompt)}) + prior ({len(prior)}) + "
                            f"new tokens ({new_tokens}) exceed max_len={max_len}"
                            + ("" if config.overflow == "error" else "; even a truncated prompt does not fit")
                        )
                    prompt = prompt[:keep_bos] + prompt[keep_bos + excess :]
                    truncated = max(truncated, excess)
                fitted.append(prompt + prior)
            inputs.append(_Input(tuple(fitted), prior, example, new_tokens, truncated))
        if priors_cut:
            logging.warning("cut the priors of %d of %d examples to max_new_tokens=%d (prior tokens count within it)",
                            priors_cut, len(inputs), config.max_new_tokens)
        cut = [x.truncated for x in inputs if x.truncated]
        if cut:
            logging.warning("truncated %d of %d inputs from the left to fit max_len=%s (%d tokens dropped)",
                            len(cut), len(inputs), max_len, sum(cut))
        return inputs

    def _stop_strings(self, stop_strings: tuple[str, ...]) -> StopStrings | None:
        if not stop_strings:
            return None
        if self.tokenizer is None:
            raise UserError("stop strings need the model's tokenizer")
        if stop_strings not in self._stops:
            self._stops[stop_strings] = StopStrings.for_tokenizer(stop_strings, self.tokenizer,
                                                                  self.model.config.vocab_size)
        return self._stops[stop_strings]

    # -- results ---------------------------------------------------------------------

    def _result(self, example: _Input, out: DecodeOutput, row: int, stop: StopStrings | None) -> Generation:
        length = int(out.lengths[row])
        tokens = tuple(int(t) for t in out.tokens[row, :length])
        reason = FINISH_REASONS[int(out.finish[row])]
        text = answer_text = None
        if self.tokenizer is not None:
            text, found = self._text(tokens, stop)
            answer_text, found = self._text(example.prior + tokens, stop) if example.prior else (text, found)
            reason = "stop" if found and reason == "length" else reason
        return Generation(
            tokens=tokens,
            finish_reason=reason,
            text=text,
            logprobs=None if out.logprobs is None else tuple(float(x) for x in out.logprobs[row, :length]),
            score=None if out.scores is None else float(out.scores[row]),
            truncated_tokens=example.truncated,
            prior=example.prior,
            answer_text=answer_text,
        )

    def _text(self, tokens: tuple[int, ...], stop: StopStrings | None) -> tuple[str, bool]:
        """`tokens` decoded and cut before the first stop string; whether one was found."""
        text = self.tokenizer.decode(list(tokens), skip_special_tokens=True)
        return stop.trim(text) if stop is not None else (text, False)
