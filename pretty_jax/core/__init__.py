"""What every part shares: the user-error types (errors.py), text and jsonl readers that
name file:line (textio.py), output directories owned file by file (run_dir.py) and
content fingerprints of inputs (fingerprint.py)."""
