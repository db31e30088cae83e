"""Helpers of the tests that start KerasTuner chief/worker processes on this machine."""
import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on now (bound once on 127.0.0.1 and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tuner_env(tuner_id: str, port: int) -> dict:
    """The environment of a KerasTuner distributed process (``chief`` or ``tuner<i>``): this
    process's, without KerasTuner or legacy-Keras settings, on CPU, with the repo importable."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KERASTUNER_", "TF_USE_LEGACY"))}
    env.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
               KERASTUNER_ORACLE_PORT=str(port), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="")
    return env
