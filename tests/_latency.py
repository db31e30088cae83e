"""Latency-table helpers of the latency tests (not a test module)."""

import json

import numpy as np

from spos_tf import spaces
from spos_tf.latency import table as latency


def tiny_fbnet():
    """A shrunken FBNet space (as flags/latency_quickstart*.cfg): 32 px, one block per stage."""
    return spaces.get(
        "fbnet",
        image_size=32,
        num_classes=10,
        width=0.5,
        repeats=(1,) * 7,
        ops=("fb_k3_e1_g2", "fb_k5_e6", "fb_skip"),
    )


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
