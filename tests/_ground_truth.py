"""Hand-made NAS-Bench-201 ground-truth tables in the published layout (not a test module): the
rows of tests/rank/test_ground_truth.py and :func:`write_table`, used by the rank, search and
benchmark tests."""

import csv

from spos_tf.spaces import nasbench201

COLUMNS = ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs")

# (op indices, CIFAR-10 accuracy, UniqueString), in file order. Hand-written keys make rows 2 and
# 5 isomorphic to rows 0 and 1: distinct cells are rows 0, 1, 3, 4, 6, 7.
CELLS = [
    ((3, 3, 3, 3, 3, 3), 80.0, "K0"),
    ((2, 2, 2, 2, 2, 2), 85.0, "K1"),
    ((3, 3, 3, 3, 3, 0), 81.0, "K0"),
    ((4, 4, 4, 4, 4, 4), 70.0, "K2"),
    ((1, 3, 1, 3, 1, 3), 85.0, "K3"),
    ((2, 2, 2, 2, 2, 0), 86.0, "K1"),
    ((0, 0, 0, 0, 0, 0), 60.0, "K4"),
    ((3, 2, 4, 1, 3, 2), 90.0, "K5"),
]


def write_table(path, cells=CELLS, columns=COLUMNS):
    """A table in the published layout: accuracy columns (the second is the first - 20), the
    benchmark string (nasbench201.to_string) and the UniqueString. Returns ``path`` as str."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "ArchitectureString", "UniqueString"])
        for ops, accuracy, key in cells:
            values = [accuracy - 20 * k for k in range(len(columns))]
            writer.writerow([*values, nasbench201.to_string(ops), key])
    return str(path)


def write_history(path, rows, macs=None):
    """A search's ``history.csv`` at ``path`` (folders made): rows ``(algorithm, arch, accuracy)``,
    or ``(algorithm, arch, accuracy, synflow)`` for a history with the SynFlow column; a candidate
    costs ``macs[arch]`` MACs (``{arch: MACs}``; 1 where not given) and 1 parameter, generation 0,
    trial ids in row order."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    synflow = bool(rows) and len(rows[0]) == 4
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        columns = ["algorithm", "trial_id", "generation", "arch", "macs", "params", "accuracy"]
        writer.writerow(columns + ["synflow"] * synflow)
        for i, (algorithm, arch, accuracy, *prior) in enumerate(rows):
            writer.writerow(
                [algorithm, f"{i:03d}", 0, arch, (macs or {}).get(arch, 1), 1, accuracy, *prior]
            )
