"""pretty_jax: PreTTY (prefix text as a yarn) in JAX. See README.md."""

import os

# transformers advises, on import, that PyTorch is missing; pretty_jax only needs its
# tokenizers and configs (torch is for the parity reference alone).
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
