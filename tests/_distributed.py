"""Helpers of the tests that start KerasTuner chief/worker processes on this machine."""

import socket
import subprocess

import pytest

from _apps import app_env, start


def free_port() -> int:
    """A TCP port nobody listens on now (bound once on 127.0.0.1 and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tuner_env(tuner_id: str, port: int) -> dict:
    """:func:`app_env` of a KerasTuner distributed process (``chief`` or ``tuner<i>``) on
    127.0.0.1:``port``."""
    return dict(
        app_env(),
        KERASTUNER_TUNER_ID=tuner_id,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
    )


def run_chief_and_workers(args, workers, timeout_s: int) -> dict:
    """Runs ``args`` once as KerasTuner's ``chief`` and once per worker id on a free local port, all
    at once; returns ``{tuner id: output}``. Fails the test if one exits non-zero or runs past
    ``timeout_s`` (a hang); kills whatever is left."""
    port = free_port()
    procs, logs = {}, {}
    try:
        for tuner_id in ("chief",) + tuple(workers):
            procs[tuner_id] = start(args, env=tuner_env(tuner_id, port))
        for tuner_id, proc in procs.items():
            try:
                logs[tuner_id], _ = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{tuner_id} did not finish in {timeout_s} s (hang?)")
            assert proc.returncode == 0, f"{tuner_id} failed:\n{logs[tuner_id][-4000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return logs
