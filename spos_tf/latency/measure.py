r"""Building and validating latency lookup tables: timing small models and whole networks.

The library of ``python -m spos_tf.latency`` (its flags and commands: :mod:`spos_tf.latency.__main__`);
it takes typed arguments (a :class:`Timer` of the settings, a space, paths) and reads no flags.

``build`` times every distinct block configuration of a space, keyed by
``op|cin|cout|mid|stride|hw`` (the op, its input channels, output channels, mid width, stride and
input side), plus the stem (``stem``) and the head (``head``), each as a small stand-alone model built
from the same layer code as the stand-alone networks (:mod:`spos_tf.models.blocks`): the median of
``runs`` timed runs after ``warmup`` untimed ones. Ops without primitives (an identity skip, the
zero op) cost 0 and are not timed. Then it times ``fit_archs`` random whole networks and stores
``constant_ms = median(measured - sum of entries)``, the overhead one whole network has that the sum
of separately timed pieces misses (or counts too often: one interpreter call instead of one per
piece). Prediction of an architecture = ``constant_ms`` + the sum of its entries.

Backends: ``tflite`` converts each model to TFLite and times LiteRT's ``Interpreter.invoke`` with
``threads`` threads and the default XNNPACK delegate, as a phone would (``dtype=int8``: full
integer quantization with int8 input and output, calibrated on random inputs); ``tf`` times a traced
``tf.function`` at ``batch`` (the paper's Table 5 setting is a GPU at batch 32; on this machine it
runs on the CPU unless a GPU is visible).

The table is rewritten atomically after every entry, so an interrupted build rerun with the same
settings continues where it stopped; other settings into the same ``out`` are refused (the message
names the fix). The header records the device, backend, TF version and settings.

Cost: one conversion and ``warmup + runs`` invocations per entry; a 224 px FBNet table has 110 entries
(see benchmarks/RESULTS.md for measured build times). Predicting is a table lookup
(:class:`LatencyTable`).

Why one module of this size: building and validating a table share the timer and the small models;
the table itself (keys, prediction) is :mod:`spos_tf.latency.table`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np

from spos_tf.runs import run_dir

# The table itself (keys, loading, prediction) is TF-free: spos_tf.latency.table.
from spos_tf.latency.table import (
    FORMAT,
    LatencyTable,
    _free,
    configurations,
    random_archs,
    sum_ms,
)
from spos_tf.spaces.space import Architecture, SearchSpace

BACKENDS = ("tflite", "tf")
DTYPES = ("float32", "int8")
STATISTICS = {"median": statistics.median, "min": min}
SETTINGS = ("backend", "batch", "threads", "dtype", "runs", "warmup", "statistic")
FIT_SEED = 2**30  # random networks for the constant: ArchSampler-independent seed


# ------------------------------------------------------------------------------- models
def _piece_model(space: SearchSpace, kind: str, cfg, batch: int):
    """A stand-alone tf_keras model of one table entry (affine BN, inference mode)."""
    import tf_keras as keras

    from spos_tf.models.blocks import Head, OpUnit, Stem
    from spos_tf.models.layers import BNControl

    control = BNControl()
    if kind == "stem":
        shape, layer = (space.image_size, space.image_size, 3), Stem(space, control, True)
    elif kind == "head":
        shape = (space.final_hw, space.final_hw, space.stages[-1].channels)
        layer = Head(space, control, True)
    else:
        op, cin, cout, mid, stride, hw = cfg
        shape = (hw, hw, cin)
        layer = OpUnit(op, cin, cout, stride, hw, (mid,), control, affine=True, name="unit")
    inputs = keras.Input(shape, batch_size=batch)
    return keras.Model(inputs, layer(inputs))


def network_model(space: SearchSpace, arch: Architecture, batch: int, seed: int = 0):
    """The stand-alone network of ``arch`` (random weights) with a fixed batch size."""
    import tf_keras as keras

    from spos_tf.build import build_standalone

    model = build_standalone(space, arch, seed=seed)
    inputs = keras.Input((space.image_size, space.image_size, 3), batch_size=batch)
    return keras.Model(inputs, model(inputs, training=False))


class Timer:
    """Times models with one backend and fixed settings (see the module docstring)."""

    def __init__(
        self,
        backend="tflite",
        batch=1,
        threads=1,
        dtype="float32",
        runs=30,
        warmup=5,
        statistic="median",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {BACKENDS}, got {backend!r}")
        if dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"--statistic must be one of {tuple(STATISTICS)}, got {statistic!r}")
        if dtype == "int8" and backend != "tflite":
            raise ValueError("--dtype=int8 needs --backend=tflite")
        for name, value, low in (
            ("batch", batch, 1),
            ("threads", threads, 1),
            ("runs", runs, 1),
            ("warmup", warmup, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")
        self.backend, self.batch, self.threads, self.dtype = backend, batch, threads, dtype
        self.runs, self.warmup, self.statistic = runs, warmup, statistic

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in SETTINGS}

    def time_ms(self, model) -> float:
        """Latency of one call of ``model`` in milliseconds: the ``statistic`` (median, or the
        minimum, which on a shared machine estimates the unloaded latency) of ``runs`` calls."""
        run = self._tflite(model) if self.backend == "tflite" else self._tf(model)
        for _ in range(self.warmup):
            run()
        times = []
        for _ in range(self.runs):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        return 1e3 * STATISTICS[self.statistic](times)

    def _inputs(self, model, n=1, seed=0):
        rng = np.random.default_rng(seed)
        return [rng.normal(size=tuple(model.inputs[0].shape)).astype(np.float32) for _ in range(n)]

    def _tflite(self, model) -> Callable:
        import warnings

        import tensorflow as tf

        from spos_tf.export.eval import interpreter as litert_interpreter

        spec = tf.TensorSpec(model.inputs[0].shape, tf.float32)
        fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)
        # Without the trackable object the converter freezes the variables directly: ~15x faster
        # than its SavedModel route (0.3 s instead of 4 s for one block), same flatbuffer.
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn])
        if self.dtype == "int8":
            samples = self._inputs(model, 4)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s] for s in samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with warnings.catch_warnings():  # the calibrator's tf.lite.Interpreter deprecation warning
            warnings.simplefilter("ignore")
            content = converter.convert()
        interpreter = litert_interpreter(content, num_threads=self.threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = self._inputs(model)[0]
        if self.dtype == "int8":
            x = np.clip(np.round(x * 20), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], x)
        return interpreter.invoke

    def _tf(self, model) -> Callable:
        import tensorflow as tf

        fn = tf.function(lambda t: model(t, training=False))
        x = tf.constant(self._inputs(model)[0])
        return lambda: fn(x).numpy()


def header(space: SearchSpace, timer: Timer, overrides: dict, command: str) -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU") if timer.backend == "tf" else []
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "space": space.name,
        "space_overrides": run_dir.normalized(dict(overrides)),
        **timer.settings(),
        "device": f"GPU {gpus[0].name}" if gpus else f"CPU {cpu} ({os.cpu_count()} logical cores)",
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "command": command,
    }


# ------------------------------------------------------------------------------- build
def build(
    space: SearchSpace,
    out: str,
    timer: Timer,
    overrides: dict,
    fit_archs: int = 5,
    overwrite: bool = False,
    stream=None,
    command: str = "",
) -> dict:
    """Builds (or continues) the table of ``space`` into ``out``; returns the record.

    Raises:
      ValueError: ``out`` holds a table of other settings (rerun with ``--overwrite`` or another
        ``--out``), bad settings, or a quantized space.
    """
    stream = stream or sys.stdout
    configs = configurations(space)
    head = header(space, timer, overrides, command)
    record = {"format": FORMAT, "header": head, "entries": {}, "constant_ms": None, "fit": None}
    if os.path.exists(out) and not overwrite:
        with open(out) as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{out!r} exists and is not a latency table ({e}); pass "
                    f"--overwrite or another --out"
                ) from None
        # Tables of an older version have no "statistic": they were timed by the median.
        same = {
            k: old.get("header", {}).get(k, "median" if k == "statistic" else None)
            for k in ("space", "space_overrides") + SETTINGS
        }
        want = {k: head[k] for k in same}
        if old.get("format") != FORMAT or same != want:
            raise ValueError(
                f"{out!r} holds a table of other settings {same}, not {want}; pass "
                f"--overwrite to replace it, or another --out"
            )
        record["entries"] = old["entries"]
        record["constant_ms"], record["fit"] = old.get("constant_ms"), old.get("fit")
        record["header"]["build_seconds"] = old["header"].get("build_seconds", 0.0)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    start = time.monotonic()
    spent = record["header"].get("build_seconds", 0.0)

    def save():
        record["header"]["build_seconds"] = round(spent + time.monotonic() - start, 1)
        run_dir.atomic_write_text(out, json.dumps(record, indent=1, sort_keys=True) + "\n")

    todo = [k for k in configs if k not in record["entries"]]
    print(f"{len(configs)} entries, {len(configs) - len(todo)} already in {out}", file=stream)
    for i, key in enumerate(todo):
        kind, cfg = configs[key]
        if kind == "block" and _free(*cfg):
            ms = 0.0
        else:
            ms = timer.time_ms(_piece_model(space, kind, cfg, timer.batch))
        record["entries"][key] = {"ms": round(ms, 5)}
        save()
        print(f"[{i + 1}/{len(todo)}] {key}: {ms:.3f} ms", file=stream, flush=True)
    if record["constant_ms"] is None:
        fit = fit_constant(space, record["entries"], timer, fit_archs)
        record["fit"], record["constant_ms"] = fit, fit["constant_ms"]
        save()
        print(f"constant {fit['constant_ms']:.3f} ms from {fit_archs} networks", file=stream)
    return record


def fit_constant(space: SearchSpace, entries: dict, timer: Timer, n: int) -> dict:
    """``constant_ms = median(measured - sum of entries)`` over ``n`` random whole networks."""
    if n < 1:
        raise ValueError(f"--fit_archs must be >= 1, got {n}")
    gaps = []
    for arch in random_archs(space, n, FIT_SEED):
        measured = timer.time_ms(network_model(space, arch, timer.batch))
        gaps.append(measured - sum_ms(space, entries, arch))
    return {
        "constant_ms": round(float(np.median(gaps)), 5),
        "archs": n,
        "gaps_ms": [round(g, 4) for g in gaps],
    }


# ------------------------------------------------------------------------------- validate
def validate(
    table: LatencyTable,
    num_archs: int,
    seed: int = 0,
    runs: Optional[int] = None,
    plot: Optional[str] = None,
    stream=None,
) -> dict:
    """Times ``num_archs`` random whole networks with the table's backend and settings, and
    compares with the predictions: MAPE (%), Pearson r, Kendall tau (scipy.stats), the share of
    predictions within +-10%; writes a scatter plot to ``plot``. Returns the report dict."""
    from scipy import stats

    stream = stream or sys.stdout
    h = table.header
    timer = Timer(
        h["backend"],
        h["batch"],
        h["threads"],
        h["dtype"],
        runs or h["runs"],
        h["warmup"],
        h.get("statistic", "median"),
    )
    rows = []
    start = time.monotonic()
    for i, arch in enumerate(random_archs(table.space, num_archs, seed)):
        measured = timer.time_ms(network_model(table.space, arch, timer.batch))
        rows.append(
            {"arch": str(arch), "predicted_ms": table.predict_ms(arch), "measured_ms": measured}
        )
        print(
            f"[{i + 1}/{num_archs}] predicted {rows[-1]['predicted_ms']:.3f} ms, measured "
            f"{measured:.3f} ms",
            file=stream,
            flush=True,
        )
    pred = np.array([r["predicted_ms"] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    err = np.abs(pred - meas) / meas
    report = {
        "lut": table.path,
        "settings": table.describe(),
        "num_archs": num_archs,
        "mape_percent": round(100 * float(err.mean()), 3),
        "within_10_percent": round(float((err <= 0.10).mean()), 3),
        "pearson_r": round(float(stats.pearsonr(pred, meas)[0]), 4) if num_archs > 2 else None,
        "kendall_tau": round(float(stats.kendalltau(pred, meas)[0]), 4) if num_archs > 2 else None,
        "measured_ms_range": [round(float(meas.min()), 3), round(float(meas.max()), 3)],
        "seconds": round(time.monotonic() - start, 1),
        "rows": rows,
    }
    if plot:
        write_plot(plot, pred, meas, report)
        report["plot"] = plot
    return report


def write_plot(path: str, pred, meas, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=100)
    ax.scatter(meas, pred, s=10)
    lo, hi = float(min(pred.min(), meas.min())), float(max(pred.max(), meas.max()))
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1)
    ax.fill_between(
        [lo, hi],
        [0.9 * lo, 0.9 * hi],
        [1.1 * lo, 1.1 * hi],
        color="gray",
        alpha=0.15,
        label="+-10%",
    )
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(
        f"{os.path.basename(report['lut'])}: MAPE {report['mape_percent']:.1f}%, "
        f"r {report['pearson_r']}, tau {report['kendall_tau']}",
        fontsize=9,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
