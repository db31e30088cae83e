r"""Cost of scoring one candidate on the supernet vs the same forward passes in a stand-alone network.

    python benchmarks/search_eval.py                      # quick-start scale (about 1-2 min, 2 cores)
    python benchmarks/search_eval.py --preset=paper_space_64px   # 20-block paper space, 64x64
                                                                 # (about 5 min, 2 cores)

Scoring a candidate (``spos_tf.models.evaluate.PathEvaluator``) = ``set_arch`` + exact BN recalibration
(``ceil(calib_images / calib_batch_size)`` training-mode forward passes, the apps' rule:
``spos_tf.runs.choices.calib_batches``) + top-1 on the held-out images (inference passes).
The baseline runs *the same forward passes* on the stand-alone network of the same architecture
(``spos_tf.build_standalone``, weights inherited), each pass type in one plain ``tf.function`` loop
over the same in-memory batches, without momentum updates or path switching. Printed:

- ``supernet s/candidate``: median over the candidates (after the first, which traces);
- ``standalone s/candidate``: median over ``--standalone_archs`` of those candidates (each network
  traced once before timing);
- ``ratio``: per architecture, supernet time / stand-alone time, median over those architectures
  (target <= 1.3), and the same against ``PathEvaluator`` run on the stand-alone network;
- ``traces``: traces of the calibration and evaluation loops over all candidates (target 1 each).

Data are random images held in memory (the input pipeline is not what is measured). Timings vary
with machine load: run on an idle machine, or compare ratios only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402
import tensorflow as tf  # noqa: E402

from spos_tf import spaces  # noqa: E402
from spos_tf.models.evaluate import PathEvaluator  # noqa: E402
from spos_tf.runs.choices import calib_batches  # noqa: E402

PRESETS = {
    # flags/quickstart_search.cfg's settings on the quick-start space.
    "quickstart": dict(
        space="shufflenet_oneshot",
        image_size=16,
        num_classes=10,
        width=0.25,
        repeats="1,1,2,1",
        calib_images=512,
        calib_batch_size=128,
        holdout_images=300,
        eval_batch_size=300,
        candidates=50,
        standalone_archs=5,
    ),
    # The paper's 20-block, 4-choice space (width 1.0, 1000 classes) at 64x64 so that it fits a CPU.
    "paper_space_64px": dict(
        space="shufflenet_oneshot",
        image_size=64,
        num_classes=1000,
        width=1.0,
        repeats="4,4,8,4",
        calib_images=256,
        calib_batch_size=64,
        holdout_images=256,
        eval_batch_size=128,
        candidates=6,
        standalone_archs=3,
        timing_repeats=3,
    ),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="quickstart")
    for name, kind in (
        ("space", str),
        ("image_size", int),
        ("num_classes", int),
        ("width", float),
        ("repeats", str),
        ("calib_images", int),
        ("calib_batch_size", int),
        ("holdout_images", int),
        ("eval_batch_size", int),
        ("candidates", int),
        ("standalone_archs", int),
        ("timing_repeats", int),
        ("seed", int),
    ):
        p.add_argument(f"--{name}", type=kind, default=None)
    args = p.parse_args(argv)
    settings = dict(timing_repeats=5, seed=0)
    settings.update(PRESETS[args.preset])
    settings.update({k: v for k, v in vars(args).items() if v is not None and k != "preset"})
    settings["preset"] = args.preset
    return settings


def plain_loops(model):
    """The same forward passes as PathEvaluator, without momentum updates or path switching."""

    @tf.function
    def train_passes(iterator):
        for images, _ in iterator:
            model(images, training=True)

    @tf.function
    def eval_passes(iterator):
        correct = tf.constant(0, tf.int64)
        for images, labels in iterator:
            predicted = tf.argmax(model(images, training=False), axis=-1, output_type=tf.int64)
            correct += tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
        return correct

    def run(calib, holdout):
        train_passes(iter(calib))
        return int(eval_passes(iter(holdout)).numpy())

    return run


def interleaved_min(fns: dict, repeats: int) -> dict:
    """``{name: min seconds}`` of each zero-argument function, run in turns ``repeats`` times (so
    that load changes hit every contender alike)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None):
    s = parse_args(argv)
    space = spaces.get(
        s["space"],
        image_size=s["image_size"],
        num_classes=s["num_classes"],
        width=s["width"],
        repeats=tuple(int(r) for r in s["repeats"].split(",")),
    )
    rng = np.random.default_rng(s["seed"])
    size = s["image_size"]
    num_calib = calib_batches(s["calib_images"], s["calib_batch_size"])
    calib_images = rng.normal(size=(num_calib * s["calib_batch_size"], size, size, 3))
    calib = (
        tf.data.Dataset.from_tensor_slices(
            (calib_images.astype("float32"), np.zeros(len(calib_images), np.int64))
        )
        .batch(s["calib_batch_size"], drop_remainder=True)
        .cache()
    )
    holdout = (
        tf.data.Dataset.from_tensor_slices(
            (
                rng.normal(size=(s["holdout_images"], size, size, 3)).astype("float32"),
                rng.integers(0, s["num_classes"], s["holdout_images"]),
            )
        )
        .batch(s["eval_batch_size"])
        .cache()
    )
    for ds in (calib, holdout):  # fill the caches before timing
        ds.reduce(0, lambda c, _: c + 1)

    supernet = spos_tf.build_supernet(space, seed=s["seed"])
    evaluator = PathEvaluator(supernet, calib, holdout, num_calib)
    archs = []
    while len(archs) < s["candidates"]:
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)

    start = time.perf_counter()
    evaluator(archs[0])
    first = time.perf_counter() - start
    per_candidate = {}
    for arch in archs[1:]:
        start = time.perf_counter()
        evaluator(arch)
        per_candidate[arch] = time.perf_counter() - start
    traces = {"calib": evaluator.calib_traces, "eval": evaluator.eval_traces}

    ratios, ratios_evaluator, standalone_times, supernet_times = [], [], [], []
    for arch in archs[1 : 1 + s["standalone_archs"]]:
        model = spos_tf.build_standalone(space, arch, supernet=supernet)
        plain = plain_loops(model)
        plain(calib, holdout)  # trace
        standalone_eval = PathEvaluator(model, calib, holdout, num_calib)
        standalone_eval.recalibrate(), standalone_eval.evaluate()  # trace
        t = interleaved_min(
            {  # the lambdas run inside this iteration: defaults bind its values
                "plain": lambda plain=plain: plain(calib, holdout),
                "evaluator": lambda e=standalone_eval: (e.recalibrate(), e.evaluate()),
                "supernet": lambda arch=arch: evaluator(arch),
            },
            s["timing_repeats"],
        )
        t_plain, t_evaluator, t_super = t["plain"], t["evaluator"], t["supernet"]
        supernet_times.append(t_super)
        standalone_times.append(t_plain)
        ratios.append(t_super / t_plain)
        ratios_evaluator.append(t_super / t_evaluator)

    result = {
        "preset": s["preset"],
        "space": space.name,
        "image_size": size,
        "blocks": space.num_blocks,
        "choices": len(space.ops),
        "calib_images": num_calib * s["calib_batch_size"],
        "holdout_images": s["holdout_images"],
        "candidates": len(archs),
        "first_candidate_s (incl. trace)": round(first, 3),
        "supernet_s_per_candidate (median, all candidates)": round(
            statistics.median(per_candidate.values()), 4
        ),
        "supernet_s_per_candidate (compared archs)": round(statistics.median(supernet_times), 4),
        "standalone_s_per_candidate (plain loops)": round(statistics.median(standalone_times), 4),
        "ratio supernet/standalone (plain loops), median": round(statistics.median(ratios), 3),
        "ratio supernet/standalone (PathEvaluator), median": round(
            statistics.median(ratios_evaluator), 3
        ),
        "ratios (plain loops)": [round(r, 3) for r in ratios],
        "timing": f"min of {s['timing_repeats']} interleaved runs per architecture",
        "traces over all candidates": traces,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
