"""Adds a zero-cost proxy column to stored rankings, so that ``rank_ablation.py`` can compare the
proxy alone (``<out>:naswot``) and its combination with the supernet (``<out>:+naswot``) on the
supernet scores already measured, without the supernets.

Usage:
    python benchmarks/prior_scores.py --proxy=naswot --dataset=folder:<cifar10_root> \
        --out=<runs>/naswot/rankings \
        --ranking=benchmarks/nb201/rankings/calr_s0_amd_step9750 --ranking=...

For every ``--ranking`` (a ``spos_tf.rank`` workdir or a stored ranking: a folder with
``ranking.csv``) it writes ``<out>/<folder name>/ranking.csv``: the same rows with one more column,
``naswot`` or ``synflow``. The proxy of each distinct architecture is computed once, on its
untrained stand-alone network in ``--space`` (default: the NAS-Bench-201 proxy of
``flags/nb201_supernet.cfg``, C=16, N=2) built with the seed ``spos_tf.rank`` uses for SynFlow,
and kept in ``<out>/<proxy>_scores.json`` (written after every 10 new scores: a rerun resumes).
NASWOT's batch is the first ``--batch`` images of the ``calib`` role (``--train_split``, no
augmentation, stored order): the images a search's first BN-calibration batch holds.

Existing ``ranking.csv`` outputs are never overwritten: remove them to recompute. A score cache
computed with other settings is refused.

Cost: one stand-alone build and one forward pass of the batch per distinct architecture (NASWOT,
about 1 s per NAS-Bench-201 proxy cell on 2 CPU cores; SynFlow about as much).
"""

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spos_tf.rank.report import ZERO_COST  # noqa: E402
from spos_tf.runs import run_dir  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", choices=ZERO_COST, required=True)
    parser.add_argument(
        "--ranking", action="append", required=True, help="a folder with ranking.csv"
    )
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--dataset", default=None, help="folder:<root> or a TFDS name (NASWOT only)"
    )
    parser.add_argument("--train_split", default="train[:50%]")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--space", default="nasbench201")
    parser.add_argument("--repeats", default="2,2,2")
    parser.add_argument("--width", type=float, default=1.0)
    return parser.parse_args(argv)


def read_ranking(folder: str) -> tuple:
    """``(fieldnames, rows)`` of ``<folder>/ranking.csv``."""
    path = os.path.join(folder, "ranking.csv")
    if not os.path.exists(path):
        raise SystemExit(f"{path} does not exist: pass a spos_tf.rank workdir or a stored ranking")
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def settings(args) -> dict:
    out = {"proxy": args.proxy, "space": args.space, "repeats": args.repeats, "width": args.width}
    if args.proxy == "naswot":
        out.update(dataset=args.dataset, train_split=args.train_split, batch=args.batch)
    return out


def load_cache(path: str, want: dict) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        stored = json.load(f)
    if stored.get("settings") != want:
        raise SystemExit(
            f"{path} holds scores computed with {stored.get('settings')}, not {want}: pass another "
            "--out, or delete it to recompute"
        )
    return dict(stored["scores"])


def naswot_batch(args, image_size: int):
    from spos_tf.data.config import DataConfig
    from spos_tf.search.priors import first_calib_batch

    data = DataConfig(name=args.dataset, train_split=args.train_split, image_size=image_size)
    try:
        return first_calib_batch(data, args.batch)
    except ValueError as err:
        raise SystemExit(f"{err}: lower --batch") from err


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.proxy == "naswot" and not args.dataset:
        raise SystemExit(
            "--proxy=naswot needs images: pass --dataset=folder:<root> (or a TFDS name)"
        )
    rankings = [(folder, *read_ranking(folder)) for folder in args.ranking]
    targets = []
    for folder, fields, _ in rankings:
        target = os.path.join(args.out, os.path.basename(os.path.normpath(folder)), "ranking.csv")
        if os.path.exists(target):
            raise SystemExit(f"{target} exists: remove it to write it again")
        if args.proxy in fields:
            raise SystemExit(f"{folder}/ranking.csv already has a {args.proxy} column")
        targets.append(target)

    import spos_tf
    import tf_keras as keras

    from spos_tf.search.priors import zero_cost_of

    repeats = tuple(int(r) for r in args.repeats.split(","))
    space = spos_tf.spaces.registry.get(args.space, repeats=repeats, width=args.width)
    os.makedirs(args.out, exist_ok=True)
    cache_path = os.path.join(args.out, f"{args.proxy}_scores.json")
    want = settings(args)
    scores = load_cache(cache_path, want)
    images = naswot_batch(args, space.image_size) if args.proxy == "naswot" else None

    def save():
        run_dir.atomic_write_text(
            cache_path, json.dumps({"settings": want, "scores": scores}, indent=1, sort_keys=True)
        )

    archs = sorted({row["arch"] for _, _, rows in rankings for row in rows})
    todo = [a for a in archs if a not in scores]
    for i, text in enumerate(todo):
        scores[text] = zero_cost_of(args.proxy, space, space.parse(text), images)
        keras.backend.clear_session()  # one throwaway network per score: keep the graph small
        if (i + 1) % 10 == 0 or i + 1 == len(todo):
            save()
            print(f"{args.proxy}: {len(scores)}/{len(archs)} architectures", flush=True)

    for (_, fields, rows), target in zip(rankings, targets):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields + [args.proxy])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, args.proxy: repr(float(scores[row["arch"]]))})
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
