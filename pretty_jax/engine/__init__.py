"""The decode engine. `Generator` (generator.py: validation, truncation -> results)
builds an `Engine` (engine.py: the frozen static half of every program, its four verbs
and `Engine.step`, the one token step) and runs it: greedy and sampling in a pool of
slots (pool.py: continuous batching, or static batches; scheduler.py: which examples
next, in what shapes), beam search in static batches (beam_search.py). A step's logits
come from the system's streams (streams.py: prefill, feed a token) combined by its
logits rule (logits.py). Strategies (strategies.py), on-device stop strings
(stopping.py), padding and positions (batching.py), the device mesh (parallel.py)."""
