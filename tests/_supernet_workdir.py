"""A trained tiny supernet run directory for the evaluation and search tests (built once per session).

The directory follows the ``spos_tf.runs.run_dir`` contract (``config.json`` + ``checkpoints/``), as a
``spos_tf.train`` supernet run would leave it: a 4-block ShuffleNet space on the embedded digits at
16x16, trained for ``STEPS`` single-path steps with ``MaskedAdam`` (about 20-40 s on 2 cores, most
of it tracing the training step). ``trained_supernet_dir`` builds it under pytest's session base
temp folder the first time and reuses it afterwards, so test modules share it.
"""

import dataclasses
import os

import spos_tf
import tensorflow as tf
import tf_keras as keras

from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.data import DataConfig, build_dataset

SPACE = "shufflenet_oneshot"
OVERRIDES = {"image_size": 16, "num_classes": 10, "width": 0.25, "repeats": [1, 1, 1, 1]}
STEPS = 300
SEED = 0


def tiny_space():
    return spaces.get(
        SPACE, **{k: tuple(v) if isinstance(v, list) else v for k, v in OVERRIDES.items()}
    )


def data_config(base: str) -> DataConfig:
    return DataConfig(name="spos_digits", data_dir=os.path.join(base, "tfds"), image_size=16)


def make_supernet_workdir(workdir: str, data: DataConfig, steps: int = STEPS):
    """Trains the tiny supernet and writes it as a run directory; returns the trained model."""
    space = tiny_space()
    net = spos_tf.build_supernet(space, seed=SEED)
    net.compile(
        optimizer=spos_tf.MaskedAdam(5e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train = build_dataset(data, "train", 64, training=True, seed=SEED)
    net.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    config = {
        "space": SPACE,
        "space_overrides": OVERRIDES,
        "seed": SEED,
        "arch": None,
        "bn_momentum": 0.9,
        "data": dataclasses.asdict(data),
    }
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=net), run_dir.checkpoint_dir(workdir), max_to_keep=1
    )
    manager.save(checkpoint_number=steps)
    run_dir.write_config(workdir, config)  # last: its presence marks a complete directory
    return net


def trained_supernet_dir(tmp_path_factory) -> str:
    """Path of the session's trained supernet run directory (trained on first use)."""
    base = str(tmp_path_factory.getbasetemp())
    workdir = os.path.join(base, "tiny_supernet")
    if not os.path.exists(os.path.join(workdir, run_dir.CONFIG_FILE)):
        make_supernet_workdir(workdir, data_config(base))
    return workdir
