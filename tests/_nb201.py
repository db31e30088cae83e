"""The tiny NAS-Bench-201 ground-truth setting of the rank tests (not a test module): the flag
files, a fixture table's rows, the ``spos_tf.rank --ground_truth`` arguments and their parsed
config, and :func:`train_supernet`, which conftest.py's session fixture ``nb201`` runs once."""

from pathlib import Path

import numpy as np
from absl import flags

from spos_tf.rank import __main__ as rank
from spos_tf.rank import run as rank_lib
from spos_tf.runs import config_flags

from _apps import run_app
from _ground_truth import write_table

REPO = Path(__file__).resolve().parents[1]
NB201_FLAGS = REPO / "flags" / "tiny_nb201_supernet.cfg"
NB201_RANK = REPO / "flags" / "tiny_nb201_rank.cfg"


def nb201_cells(num=30, seed=0):
    """Fixture table rows: ``num`` random cells with synthetic accuracies (rising with their
    3x3 convs, plus noise) and hand-made UniqueStrings: cells 2k and 2k+1 (k < 5) isomorphic."""
    rng = np.random.default_rng(seed)
    cells = list(dict.fromkeys(tuple(rng.integers(0, 5, 6).tolist()) for _ in range(10 * num)))
    return [
        (ops, 80 + ops.count(3) + float(rng.normal()), f"K{i // 2}" if i < 10 else f"U{i}")
        for i, ops in enumerate(cells[:num])
    ]


def train_supernet(base: Path):
    """flags/tiny_nb201_supernet.cfg trained by the app into ``base/supernet`` (data under
    ``base/tfds``) and a fixture table of :func:`nb201_cells` at ``base/nb201_table.csv``:
    ``(supernet_dir, table path, data_dir)``."""
    data_dir = base / "tfds"
    run_app(
        "train",
        f"--flagfile={NB201_FLAGS}",
        f"--workdir={base / 'supernet'}",
        f"--data_dir={data_dir}",
        "--noprogress",
        timeout=900,
    )
    table = write_table(base / "nb201_table.csv", nb201_cells())
    return base / "supernet", table, data_dir


def gt_args(supernet_dir, workdir, table, data_dir, *extra):
    """The ``spos_tf.rank`` arguments of a ground-truth ranking with flags/tiny_nb201_rank.cfg."""
    return [
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        f"--ground_truth={table}",
        f"--flagfile={NB201_RANK}",
        "--noprogress",
        *extra,
    ]


def gt_config(*args):
    """The RankConfig the app's own flags parse ``args`` into."""
    fv = flags.FlagValues()
    rank.define_flags(fv)
    fv(["rank", *args])
    return config_flags.from_flags(rank_lib.RankConfig, fv)
