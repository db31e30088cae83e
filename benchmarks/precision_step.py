"""Supernet (and stand-alone) training-step throughput per precision policy, runs alternated.

Usage:
    python benchmarks/precision_step.py [--precisions=float32,mixed_bfloat16] [--size=224]
        [--batch=32] [--strategy=default|mirrored] [--standalone] [--archs=2] [--rounds=3]
        [--steps=2] [--space=shufflenet_oneshot] [--space_args='{}'] [--tiny]

For each precision (``spos_tf.models.precision``) the supernet is built under that Keras policy with a
masked SGD (momentum 0.9, wd 4e-5; loss-scaled for mixed_float16) and trained on a cycle of
``--archs`` random paths with ``spos_tf.models.step.train_step`` under ``--strategy``
(``spos_tf.train.make_strategy``: ``mirrored`` = all local GPUs, else the CPU), on one fixed
global batch already split across the replicas (no input pipeline: compute only). With
``--standalone`` the stand-alone network of the first path is timed the same way. The first call
of each step function is its trace time; then ``--rounds`` rounds run ``--steps`` steps of every
(precision, model) in turn, so that load changes hit all alike; img/s uses the median step.

On GPUs each (precision, model) also reports the peak device memory of its build, trace and
first step, summed over GPUs (``tf.config.experimental.get_memory_info``; the increase over what
was in use before it). ``--tiny`` is the CI mode (32x32, 10 classes, a 4-block quarter-width
space of 2 ops, batch 8, one round of one step): it checks that the script runs, not the speed.

Prints a JSON line as each (precision, model) is traced (trace time, so a run stopped early still
says something), then one per (precision, model) with the timings and a summary line with the
ratios to float32.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from spos_tf.models import precision
from spos_tf import spaces
from spos_tf import train as train_lib  # noqa: E402
from spos_tf.models import step as step_lib  # noqa: E402
from spos_tf.models.sampling import SequenceSampler  # noqa: E402

TINY = dict(
    size=32,
    batch=8,
    archs=2,
    rounds=1,
    steps=1,
    space_args={"width": 0.25, "repeats": [1, 1, 1, 1], "ops": ["shuffle3x3", "xception"]},
)


def _gpus():
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def _memory(key):
    """Sum over GPUs of ``get_memory_info(gpu)[key]`` in bytes (None without GPUs)."""
    gpus = _gpus()
    if not gpus:
        return None
    return sum(tf.config.experimental.get_memory_info(g)[key] for g in gpus)


def _reset_peaks():
    for g in _gpus():
        tf.config.experimental.reset_memory_stats(g)


def _step_function(strategy, model, optimizer, batch):
    """A traced, distributed ``train_step`` returning the global loss."""
    ce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=keras.losses.Reduction.NONE
    )

    def loss_fn(labels, logits):
        return tf.reduce_sum(ce(labels, logits)) / batch

    @tf.autograph.experimental.do_not_convert  # plain Python: nothing for autograph to convert
    def replica(x, y):
        return step_lib.train_step(model, optimizer, loss_fn, x, y).loss

    @tf.function
    def step(x, y):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, (x, y)), None)

    return step


def _split(strategy, x, y):
    """The global batch as per-replica values (contiguous slices), placed once."""
    n = strategy.num_replicas_in_sync
    per = x.shape[0] // n

    def part(t):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.identity(
                t[ctx.replica_id_in_sync_group * per : (ctx.replica_id_in_sync_group + 1) * per]
            )
        )

    return (part(x), part(y)) if n > 1 else (x, y)


def build(space, policy, archs, strategy, batch, standalone, seed=0):
    """Yields ``(model name, {"step": traced step function, "optimizer": ...}, GPU bytes in use
    before the build)`` for the supernet (and the stand-alone network) of one precision; the
    caller runs the first step before asking for the next model, so peaks stay apart."""
    for kind in ("supernet", "standalone") if standalone else ("supernet",):
        used = _memory("current")
        _reset_peaks()
        with strategy.scope(), precision.policy_scope(policy):
            if kind == "supernet":
                model = spos_tf.build_supernet(space, seed=seed)
                model.set_sampler(SequenceSampler(space, archs, cycle=True))
            else:
                model = spos_tf.build_standalone(space, archs[0], seed=seed)
            optimizer = precision.loss_scaled(spos_tf.MaskedSGD(0.1, 0.9, 4e-5), policy)
            if kind == "supernet":
                optimizer.bind(model)
            optimizer.build(model.trainable_variables)
        step = _step_function(strategy, model, optimizer, batch)
        yield kind, {"step": step, "optimizer": optimizer}, used


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--space", default="shufflenet_oneshot")
    p.add_argument("--space_args", default="{}")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--strategy", default="default", choices=train_lib.STRATEGIES[:2])
    p.add_argument("--standalone", action="store_true")
    p.add_argument("--archs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="CI mode: " + json.dumps(TINY))
    args = p.parse_args(argv)
    space_args = json.loads(args.space_args)
    if args.tiny:
        for key, value in TINY.items():
            if key == "space_args":
                space_args = {**value, **space_args}
            else:
                setattr(args, key, value)
    policies = [precision.check(s) for s in args.precisions.split(",")]
    strategy = train_lib.make_strategy(args.strategy)
    replicas = strategy.num_replicas_in_sync
    if args.batch % replicas:
        raise SystemExit(f"--batch={args.batch} is not divisible by the {replicas} replicas")
    space = spaces.get(
        args.space, image_size=args.size, num_classes=1000 if args.size >= 160 else 10, **space_args
    )
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    x = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, args.batch), tf.int32)
    data = _split(strategy, x, y)
    print(
        json.dumps(
            {
                "devices": _gpus() or ["CPU"],
                "replicas": replicas,
                "strategy": args.strategy,
                "space": space.name,
                "image_size": args.size,
                "batch": args.batch,
                "archs": [str(a) for a in archs],
            }
        ),
        flush=True,
    )

    runs = {}
    for policy in policies:
        for kind, run, used in build(space, policy, archs, strategy, args.batch, args.standalone):
            t = time.perf_counter()
            loss = float(run["step"](*data))  # trace + first step
            run["trace_s"] = time.perf_counter() - t
            float(run["step"](*data))
            peak = _memory("peak")
            run["peak_mib"] = None if peak is None else round((peak - used) / 2**20, 1)
            run["first_loss"] = loss
            run["times"] = []
            print(
                json.dumps(
                    {
                        "traced": f"{kind} {policy}",
                        "trace_s": round(run["trace_s"], 1),
                        "peak_gpu_mib": run["peak_mib"],
                    }
                ),
                flush=True,
            )
            runs[(policy, kind)] = run
    for _ in range(args.rounds):
        for run in runs.values():
            for _ in range(args.steps):
                t = time.perf_counter()
                float(run["step"](*data))
                run["times"].append(time.perf_counter() - t)
    summary = {}
    for (policy, kind), run in runs.items():
        step_s = float(np.median(run["times"]))
        scale = getattr(run["optimizer"], "loss_scale", None)
        record = {
            "precision": policy,
            "model": kind,
            "img_per_s": round(args.batch / step_s, 1),
            "step_s": round(step_s, 4),
            "trace_s": round(run["trace_s"], 1),
            "peak_gpu_mib": run["peak_mib"],
            "steps_timed": len(run["times"]),
            "loss_first": round(run["first_loss"], 4),
            "loss_scale": None if scale is None else float(scale),
        }
        print(json.dumps(record), flush=True)
        summary[f"{kind}_{policy}_img_per_s"] = record["img_per_s"]
    base = {
        k: runs[("float32", k)]["times"]
        for k in ("supernet", "standalone")
        if ("float32", k) in runs
    }
    for (policy, kind), run in runs.items():
        if policy != "float32" and kind in base:
            summary[f"{kind}_{policy}_speedup"] = round(
                float(np.median(base[kind]) / np.median(run["times"])), 3
            )
    for policy in policies:
        if (policy, "standalone") in runs:
            summary[f"ratio_supernet_standalone_{policy}"] = round(
                float(
                    np.median(runs[(policy, "supernet")]["times"])
                    / np.median(runs[(policy, "standalone")]["times"])
                ),
                3,
            )
    print(json.dumps({"summary": summary}), flush=True)
    return summary


if __name__ == "__main__":
    main()
