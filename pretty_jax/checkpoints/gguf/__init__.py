"""llama.cpp GGUF files read as HF checkpoints, without torch: the file's header parsed
and checked (header.py), its metadata and memory-mapped tensor directory (reader.py),
the architectures it may hold (architectures.py), its metadata -> an HF config
(metadata.py), its tokenizer metadata -> the tokenizer transformers would rebuild
(tokenizer.py), llama.cpp tensor names and layouts -> HF's (tensor_names.py),
dequantising ggml tensor types (quants.py), and the cached view directory that the
checkpoint loaders read (importer.py)."""
