"""llama.cpp GGUF files read as HF checkpoints: the file's metadata and tensor
directory (reader.py), the architectures it may hold (architectures.py), its metadata
-> an HF config (metadata.py), llama.cpp tensor names and layouts -> HF's
(tensor_names.py), dequantising ggml tensor types (quants.py), and the cached view
directory that the checkpoint loaders read (importer.py)."""
