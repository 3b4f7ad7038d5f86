"""Checkpoints in and out: loading HF / converted directories and GGUF files into a
model (loading.py, hf_files.py, gguf/), tokenizers (tokenizer.py), saving in HF format
(export.py), the transformers reference model (reference.py, needs torch) and tiny
random checkpoints for tests and trials (tiny.py)."""
