"""The decode engine: `Generator` (generator.py: validation, truncation, bucketed batches
-> results) over the jitted prefill + decode loop (decode.py) and beam search
(beam_search.py), with strategies (strategies.py), on-device stop strings (stopping.py),
padding and positions (batching.py) and the device mesh (parallel.py)."""
