"""The decode engine: `Generator` (generator.py: validation, truncation -> results) over
continuous batching (continuous.py: the host loop; slots.py: the pool of slots on
device; scheduler.py: which examples next, in what shapes) for greedy and sampling, and
static batches of the jitted prefill + decode loop (decode.py) and beam search
(beam_search.py), with strategies (strategies.py), on-device stop strings (stopping.py),
padding and positions (batching.py) and the device mesh (parallel.py)."""
