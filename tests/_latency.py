"""Latency-table helpers of the latency tests (not a test module)."""

import json

import numpy as np

from spos_tf.latency import table as latency


def synthetic_lut(space, path, seed=0) -> str:
    """A finished table with made-up entries (uniform 0.1-2 ms): for the constraint tests, where
    only the arithmetic matters, not the timing."""
    rng = np.random.default_rng(seed)
    entries = {k: {"ms": float(rng.uniform(0.1, 2.0))} for k in latency.configurations(space)}
    record = {
        "format": latency.FORMAT,
        "entries": entries,
        "constant_ms": 0.5,
        "fit": None,
        "header": {
            "space": space.name,
            "space_overrides": {},
            "backend": "tflite",
            "batch": 1,
            "threads": 1,
            "dtype": "float32",
            "runs": 1,
            "warmup": 0,
            "device": "synthetic",
            "command": "synthetic",
        },
    }
    with open(path, "w") as f:
        json.dump(record, f)
    return str(path)
