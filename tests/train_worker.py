"""`python -m pretty_jax.train` with the same flags, plus one: --kill_after_step=N sends
this process SIGKILL (as `kill -9` would) once update N is done, before it is saved.
tests/test_train.py uses it to kill a run at a known point and resume it."""

import os
import signal

from absl import flags

from pretty_jax.cli import common, mesh_flags, train_flags
from pretty_jax.training import train

_KILL_AFTER_STEP = flags.DEFINE_integer("kill_after_step", None, "SIGKILL this process after this update.")


def main(argv: list[str]) -> None:
    del argv

    def on_step(step: int, metrics) -> None:
        del metrics
        if step == _KILL_AFTER_STEP.value:
            os.kill(os.getpid(), signal.SIGKILL)

    train(train_flags.settings_from_flags(), mesh_flags.mesh_from_flags(), on_step=on_step)


if __name__ == "__main__":
    common.run(main)
