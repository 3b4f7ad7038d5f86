"""llama.cpp GGUF files: metadata -> an HF config and tokenizer, llama.cpp tensor names
-> HF's, a cached view directory (importer.py), and dequantising ggml tensor types
(quants.py)."""
