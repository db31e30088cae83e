"""Is supernet training bit-reproducible on this CPU, and what does reproducibility cost?

Usage:
    python benchmarks/determinism.py [--space=nasbench201] [--space_args='{"width": 1.0}']
        [--batch=128] [--steps=60] [--repeats=2] [--settings=default,grappler=off]

For each setting (``default``: the environment as it is; ``NAME=VALUE[+NAME=VALUE]``: those
variables set for the child; ``grappler=off``: TensorFlow's Grappler graph optimizer turned off, as
``spos_tf.train --deterministic`` does), ``--repeats`` fresh Python processes each build the same supernet
(seed 0), sample the same paths and run ``--steps`` training steps of
``spos_tf.models.step.train_step`` (masked SGD, momentum 0.9, wd 5e-4, one traced function) on the
same random batch; each prints a SHA-256 of every weight after the run and the median step time
(tracing excluded). Settings are run in turn, one process at a time. A setting is reproducible when
its repeats' hashes agree; different settings may round differently (and disagree with each other)
without either being wrong. The default (``nasbench201`` at 32 px, C=16, N=2, batch 128) is the
supernet of ``flags/nb201_supernet.cfg``. Cost: about a minute per process.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child(space_name, space_args, batch, steps):
    """One run in this process: ``{"sha256", "step_s"}``; with
    ``grappler=off`` inside the training app's ``--deterministic`` block."""
    from spos_tf.runs.determinism import reproducible_graphs

    with reproducible_graphs(os.environ.get(GRAPPLER_OFF_ENV) == "1"):
        return _train(space_name, space_args, batch, steps)


def _train(space_name, space_args, batch, steps):
    import numpy as np

    import spos_tf
    import tensorflow as tf
    from spos_tf import spaces
    from spos_tf.models.sampling import SequenceSampler
    from supernet_step import _step_function  # benchmarks/ is this script's folder

    space = spaces.get(space_name, **space_args)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(steps + 2)]
    x = tf.constant(rng.normal(size=(batch, space.image_size, space.image_size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, batch))
    net = spos_tf.build_supernet(space, seed=0)
    net.set_sampler(SequenceSampler(space, archs))
    # the traced spos_tf.models.step.train_step of benchmarks/supernet_step.py (binds and builds)
    train = _step_function(net, spos_tf.MaskedSGD(0.05, 0.9, 5e-4))

    train(x, y).numpy()  # tracing
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        train(x, y).numpy()
        times.append(time.perf_counter() - t)
    digest = hashlib.sha256()
    for v in net.variables:
        digest.update(v.name.encode())
        digest.update(np.ascontiguousarray(v.numpy()).tobytes())
    return {
        "sha256": digest.hexdigest()[:16],
        "step_s": round(float(np.median(times)), 4),
    }


GRAPPLER_OFF_ENV = "DETERMINISM_BENCH_GRAPPLER_OFF"


def parse_setting(text):
    """``default`` -> {}; ``A=1+B=2`` -> {"A": "1", "B": "2"}; ``grappler=off`` -> the child turns
    TensorFlow's Grappler graph optimizer off before tracing."""
    if text == "default":
        return {}
    pairs = [p.split("=", 1) for p in text.split("+")]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise ValueError(
            f"setting {text!r}: write NAME=VALUE[+NAME=VALUE...], grappler=off or 'default'"
        )
    env = {}
    for name, value in pairs:
        if name == "grappler":
            if value != "off":
                raise ValueError(f"setting {text!r}: only grappler=off is known")
            env[GRAPPLER_OFF_ENV] = "1"
        else:
            env[name] = value
    return env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nasbench201")
    p.add_argument("--space_args", default='{"image_size": 32, "width": 1.0, "repeats": [2, 2, 2]}')
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--settings", default="default,grappler=off")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    space_args = json.loads(args.space_args)
    if args.child:
        print(json.dumps(child(args.space, space_args, args.batch, args.steps)))
        return 0
    try:
        settings = [(text, parse_setting(text)) for text in args.settings.split(",")]
    except ValueError as err:
        p.error(str(err))
    for setting, variables in settings:
        env = dict(os.environ, **variables)
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    f"--space={args.space}",
                    f"--space_args={args.space_args}",
                    f"--batch={args.batch}",
                    f"--steps={args.steps}",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = {
            "setting": setting,
            "reproducible": len({r["sha256"] for r in runs}) == 1,
            "sha256": [r["sha256"] for r in runs],
            "step_s": [r["step_s"] for r in runs],
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
