r"""Latency lookup tables: measured per-block latencies, and predictions of whole networks.

    python -m spos_tf.latency build --space=fbnet --out=lut.json [--backend=tflite|tf] \
        [--batch=1] [--threads=1] [--dtype=float32|int8] [--runs=30] [--warmup=5] [--fit_archs=5] \
        [--statistic=median|min]
    python -m spos_tf.latency validate --lut=lut.json --num_archs=50 [--plot=lut.png]
    python -m spos_tf.latency predict --lut=lut.json --arch=fbnet_b

The app: its flags, and the command they make. What ``build`` and ``validate`` measure and store
(keys, the fitted constant, backends, resuming) is :mod:`spos_tf.latency.measure`; the table and its
predictions are :mod:`spos_tf.latency.table`.
"""

from __future__ import annotations

import json
import os
import sys

from spos_tf.latency.measure import BACKENDS, DTYPES, STATISTICS, Timer, build, validate
from spos_tf.latency.table import LatencyTable
from spos_tf.runs import run_dir


def define_flags(fv=None) -> None:
    from absl import flags

    from spos_tf.spaces import overrides as space_overrides

    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("space", None, "build: search space name.", **d)
    flags.DEFINE_string("out", None, "build: the table to write (JSON).", **d)
    flags.DEFINE_enum(
        "backend",
        "tflite",
        list(BACKENDS),
        "build: tflite interpreter (XNNPACK) or a traced tf.function.",
        **d,
    )
    flags.DEFINE_integer("batch", 1, "build: batch size.", **d)
    flags.DEFINE_integer("threads", 1, "build: threads (TFLite interpreter; TF intra-op).", **d)
    flags.DEFINE_enum("dtype", "float32", list(DTYPES), "build: float32, or int8 (tflite).", **d)
    flags.DEFINE_integer("runs", 30, "Timed runs per model.", **d)
    flags.DEFINE_enum(
        "statistic",
        "median",
        list(STATISTICS),
        "build: the latency of a model "
        "is the median of its runs, or their minimum (an estimate of the unloaded "
        "latency on a machine shared with other jobs).",
        **d,
    )
    flags.DEFINE_integer("warmup", 5, "build: untimed runs before timing.", **d)
    flags.DEFINE_integer("fit_archs", 5, "build: random whole networks fitting the constant.", **d)
    flags.DEFINE_bool("overwrite", False, "build: replace a table of other settings in --out.", **d)
    flags.DEFINE_string("lut", None, "validate/predict: the table.", **d)
    flags.DEFINE_integer("num_archs", 50, "validate: random networks to time.", **d)
    flags.DEFINE_integer("seed", 0, "validate: seed of the random networks.", **d)
    flags.DEFINE_string("plot", None, "validate: scatter plot path (default <lut>.png).", **d)
    flags.DEFINE_string(
        "report", None, "validate: JSON report path (default <lut>.validate.json).", **d
    )
    flags.DEFINE_string("arch", None, "predict: architecture (text, file or name).", **d)
    space_overrides.define(fv)


def main(argv) -> int:
    from absl import flags

    from spos_tf.spaces import overrides as space_overrides
    from spos_tf import spaces
    from spos_tf.spaces.space import arch_from_any

    fv = flags.FLAGS
    commands = ("build", "validate", "predict")
    if len(argv) != 2 or argv[1] not in commands:
        print(
            f"error: give one command of {commands}, e.g. python -m spos_tf.latency build "
            f"--space=fbnet --out=lut.json",
            file=sys.stderr,
        )
        return 2
    try:
        if argv[1] == "build":
            if not fv.space or not fv.out:
                raise ValueError("build needs --space and --out")
            if fv.backend == "tf":
                import tensorflow as tf

                tf.config.threading.set_intra_op_parallelism_threads(fv.threads)
            overrides = space_overrides.from_flags(fv)
            space = spaces.get(fv.space, **overrides)
            timer = Timer(
                fv.backend, fv.batch, fv.threads, fv.dtype, fv.runs, fv.warmup, fv.statistic
            )
            command = "python -m spos_tf.latency " + " ".join(sys.argv[1:])
            record = build(
                space, fv.out, timer, overrides, fv.fit_archs, fv.overwrite, command=command
            )
            print(
                json.dumps(
                    {
                        "out": fv.out,
                        "entries": len(record["entries"]),
                        "constant_ms": record["constant_ms"],
                        "build_seconds": record["header"]["build_seconds"],
                    }
                )
            )
        else:
            if not fv.lut:
                raise ValueError(f"{argv[1]} needs --lut")
            table = LatencyTable(fv.lut)
            if argv[1] == "predict":
                if not fv.arch:
                    raise ValueError("predict needs --arch")
                arch = arch_from_any(table.space, fv.arch)
                print(
                    json.dumps({"arch": str(arch), "latency_ms": round(table.predict_ms(arch), 4)})
                )
                return 0
            if table.header["backend"] == "tf":
                import tensorflow as tf

                tf.config.threading.set_intra_op_parallelism_threads(table.header["threads"])
            base = os.path.splitext(fv.lut)[0]
            report = validate(table, fv.num_archs, fv.seed, fv.runs, fv.plot or base + ".png")
            report_path = fv.report or base + ".validate.json"
            run_dir.atomic_write_text(report_path, json.dumps(report, indent=1) + "\n")
            print(json.dumps({k: v for k, v in report.items() if k != "rows"}))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    from absl import app

    define_flags()
    app.run(main)
