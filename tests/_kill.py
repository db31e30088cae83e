"""Kill tests that do not depend on machine speed (not a test module).

:func:`start_app_that_stops_after_checkpoint` starts ``python -m spos_tf.<app>`` with
``tf.train.CheckpointManager.save`` patched: after the ``n``-th checkpoint of the process it
writes the checkpoint's path to a marker file and then blocks. The test waits for that file and
SIGKILLs the process, so the kill always lands right after checkpoint ``n`` (never after the run
finished, however fast the machine), with the step's metrics, TensorBoard events and input state
as a real kill there would leave them.
"""

import signal
import sys
import time
from pathlib import Path

import _apps

_LAUNCHER = """
import runpy, sys, time
import spos_tf
import tensorflow as tf

marker, after, module = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_save, saved = tf.train.CheckpointManager.save, []

def save(self, *args, **kwargs):
    path = real_save(self, *args, **kwargs)
    saved.append(path)
    if len(saved) == after:
        with open(marker + ".tmp", "w") as f:
            f.write(path)
        import os
        os.replace(marker + ".tmp", marker)
        while True:  # wait here for the test's SIGKILL
            time.sleep(1)
    return path

tf.train.CheckpointManager.save = save
sys.argv = [module] + sys.argv[4:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def start_app(module: str, args):
    """``python -m <module> <args>`` started in the repository (``_apps.start``: stdout and
    stderr together, as text)."""
    return _apps.start([sys.executable, "-m", module, *args])


def start_app_that_stops_after_checkpoint(module: str, args, marker, after: int = 1):
    """``python -m <module> <args>``, started like :func:`start_app`, that blocks after its
    ``after``-th checkpoint save, once it has written that checkpoint's path to ``marker``."""
    return _apps.start([sys.executable, "-c", _LAUNCHER, str(marker), str(after), module, *args])


def kill_at_marker(proc, marker, timeout_s: float) -> str:
    """Waits until ``proc`` wrote ``marker`` (failing if it exits first or ``timeout_s``
    passes), SIGKILLs it and returns the checkpoint path the marker names."""
    marker = Path(marker)
    deadline = time.monotonic() + timeout_s
    try:
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(
                    f"the run exited ({proc.returncode}) before its checkpoint:\n"
                    + proc.communicate()[0][-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint marker after {timeout_s} s")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
    return marker.read_text()
