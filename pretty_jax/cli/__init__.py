"""The command-line edge: every absl flag is defined here and nowhere else. Each module
turns flags into the library's frozen settings and calls a plain function:
run.py (experiments, alignment, demo), train.py, convert.py, parity.py, tiny.py;
decode_flags.py and train_flags.py hold the flags two entry points share, common.py the
start-up and the one-line error report."""
