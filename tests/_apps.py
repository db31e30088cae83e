"""The one way tests start an app or a benchmark script in a subprocess (not a test module).

``run_app("train", "--flagfile=...")`` runs ``python -m spos_tf.train ...`` exactly as a user
does: this interpreter, the repository root as working directory and first on ``PYTHONPATH``,
on CPU, without KerasTuner or legacy-Keras variables of the test process (the package sets its
own). :func:`run_script` does the same for ``benchmarks/<name>`` (a Python script, or a shell
script run by bash). :func:`start_app` is the ``Popen`` form for tests that kill or talk to the
process. With ``check`` (the default) a non-zero exit fails the test with the output's tail.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def app_env(**extra) -> dict:
    """The environment of an app started by a test: this process's, without KerasTuner or
    legacy-Keras settings, on CPU, with the repository importable; ``extra`` added on top."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KERASTUNER_", "TF_USE_LEGACY"))
    }
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


def app_command(app: str, *args) -> list:
    """``[python, -m, spos_tf.<app>, *args]`` (``app`` without the ``spos_tf.`` prefix)."""
    return [sys.executable, "-m", f"spos_tf.{app}", *map(str, args)]


def _finish(proc: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check:
        assert proc.returncode == 0, (
            f"{proc.args} exited {proc.returncode}:\n" + proc.stdout[-3000:] + proc.stderr[-5000:]
        )
    return proc


def run(command, *, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """Runs ``command`` (a list) in the repository root with :func:`app_env` (or ``env``),
    stdout and stderr captured as text."""
    proc = subprocess.run(
        [str(c) for c in command],
        cwd=REPO,
        env=app_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return _finish(proc, check)


def run_app(app: str, *args, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """``python -m spos_tf.<app> *args`` run to completion (see the module docstring)."""
    return run(app_command(app, *args), env=env, check=check, timeout=timeout)


def run_script(name: str, *args, env=None, check=True, timeout=600):
    """``benchmarks/<name>`` run to completion: ``python`` for ``.py``, ``bash`` otherwise."""
    path = REPO / "benchmarks" / name
    launcher = [sys.executable] if name.endswith(".py") else ["bash"]
    return run([*launcher, path, *args], env=env, check=check, timeout=timeout)


def start_app(app: str, *args, env=None) -> subprocess.Popen:
    """``python -m spos_tf.<app> *args`` started, stdout and stderr together as text."""
    return start(app_command(app, *args), env=env)


def start(command, *, env=None) -> subprocess.Popen:
    """``command`` started in the repository root like :func:`run` (stderr into stdout)."""
    return subprocess.Popen(
        [str(c) for c in command],
        cwd=REPO,
        env=app_env() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
