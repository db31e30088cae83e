r"""Evolutionary (or random) architecture search on a trained supernet.

    python -m spos_tf.search --flagfile=flags/quickstart_search.cfg --supernet_dir=/tmp/qs \
        --workdir=/tmp/qs_search
    python -m spos_tf.search --flagfile=flags/search.cfg --supernet_dir=/ckpt/supernet \
        --data_dir=$TFDS --workdir=/ckpt/search

The flags only build a :class:`spos_tf.search_lib.SearchConfig`; all logic lives in
:mod:`spos_tf.search_lib`. Writes ``history.csv``, ``best.json`` and ``search.png`` into
``--workdir``; rerunning the same command resumes a killed search. For a distributed search (one
chief serving the oracle, workers scoring candidates) set ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (see the README).

Exit status: 0 done, 2 bad input (the message names the fix; nothing was written), 1 a candidate
could not be evaluated (rerun to resume once fixed).
"""
from __future__ import annotations

import dataclasses
import sys
import time

from absl import app, flags

from spos_tf import app_common

COST_FLAGS = ("max_macs", "max_params", "max_bitops", "bitops_budget", "bitops_convention",
              "max_latency_ms", "latency_table")


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``); defaults are
    ``SearchConfig``'s (the paper's evolutionary search)."""
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("supernet_dir", None, "The --workdir of a trained spos_tf.train supernet.",
                        **d)
    flags.DEFINE_string("workdir", None, "Search directory: oracle state, history.csv, best.json, "
                        "search.png.", **d)
    flags.DEFINE_enum("algorithm", "evolution", ["evolution", "random", "both"],
                      "both: evolution, then random search with the same budget (Figure 3).", **d)
    flags.DEFINE_integer("population_size", 50, "Evolution: candidates per generation.", **d)
    flags.DEFINE_integer("num_parents", 10, "Evolution: top-k parents.", **d)
    flags.DEFINE_integer("num_crossover", 25, "Evolution: children by crossover per generation.",
                         **d)
    flags.DEFINE_integer("num_mutation", 25, "Evolution: children by mutation per generation.", **d)
    flags.DEFINE_float("mutation_prob", 0.1, "Evolution: per-gene mutation probability.", **d)
    flags.DEFINE_integer("max_trials", 1000, "Candidates evaluated per algorithm.", **d)
    flags.DEFINE_integer("seed", 0, "Oracle seed.", **d)
    flags.DEFINE_float("max_macs", None, "Constraint: multiply-accumulates (the paper's FLOPs).",
                       **d)
    flags.DEFINE_float("max_params", None, "Constraint: parameters of the stand-alone network.", **d)
    flags.DEFINE_float("max_bitops", None, "Constraint: BitOps (quantized spaces only).", **d)
    flags.DEFINE_float("max_latency_ms", None, "Constraint: latency predicted by "
                       "--latency_table (ms).", **d)
    flags.DEFINE_string("latency_table", None, "Latency lookup table of the supernet's space "
                        "(python -m spos_tf.latency build); adds latency_ms to the outputs.", **d)
    flags.DEFINE_string("bitops_budget", None, "Constraint: BitOps of the uniform kWkA network "
                        "of the space, e.g. 3w3a (quantized spaces only; instead of --max_bitops).",
                        **d)
    flags.DEFINE_enum("bitops_convention", "ours", ["ours", "paper"], "BitOps counting: ours "
                      "(every layer, 8-bit first conv and FC included) or paper (choice blocks "
                      "only, Table 6's count; its G is 2^30).", **d)
    flags.DEFINE_integer("calib_images", 25_600, "BN recalibration images per candidate (the "
                         "reference: 200 batches of 128).", **d)
    flags.DEFINE_integer("calib_batch_size", 128, "BN recalibration batch size.", **d)
    flags.DEFINE_bool("calib_augment", False, "Recalibrate BN on training images with the "
                      "training augmentation (as the reference), the same augmented images for "
                      "every candidate; default: un-augmented (evaluation preprocessing).", **d)
    flags.DEFINE_enum("calib_mode", "exact", ["exact", "ema"], "BN recalibration: exact "
                      "cumulative average (default), or the reference's reset + exponential "
                      "average with Keras momentum 0.9 (PyTorch 0.1).", **d)
    flags.DEFINE_integer("holdout_images", None, "Evaluate on the first this many held-out images "
                         "(default: the whole held-out split).", **d)
    flags.DEFINE_integer("eval_batch_size", 256, "Held-out evaluation batch size.", **d)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the supernet run's).", **d)
    flags.DEFINE_integer("cache_mb", 4096, "Keep preprocessed calibration and held-out images in "
                         "memory when they fit in this many MiB (0: never).", **d)
    flags.DEFINE_bool("overwrite", False, "Delete a previous search in --workdir.", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar with the best accuracy so far.", **d)
    flags.DEFINE_integer("wait_for_workers", 0, "Distributed search, chief: hand out no candidate "
                         "until this many workers have asked (KerasTuner's chief exits once every "
                         "worker it has seen is done, so a late worker would find no chief). "
                         "0: don't wait.", **d)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                      "Compute dtype of the supernet while scoring candidates (mixed_float16 "
                      "for GPUs, mixed_bfloat16 for TPUs and bfloat16 CPUs); any precision "
                      "scores a supernet trained in any other.", **d)
    flags.DEFINE_list("seeds", [], "Run the whole search once per seed (e.g. 0,1,2) into "
                      "<workdir>/seed_<s>/ and compare evolution with random search over seeds "
                      "(search.png with bands, seeds.json); --seed is then ignored.", **d)


def config_from_flags(fv=None):
    """The :class:`~spos_tf.search_lib.SearchConfig` of parsed flags (not yet validated)."""
    from spos_tf.search_lib import SearchConfig

    fv = flags.FLAGS if fv is None else fv
    return SearchConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(SearchConfig)})


def main(argv):
    app_common.start(argv)
    from spos_tf import search_lib

    start = time.monotonic()
    try:
        summary = search_lib.run(config_from_flags())
    except search_lib.EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    best = summary["best"]
    if best:
        print(f"Done in {time.monotonic() - start:.0f} s ({summary['evaluated']} candidates "
              f"evaluated now, {best['evaluated']} in all): best {best['arch']} accuracy "
              f"{best['accuracy']:.4f} {best['costs']}; see {flags.FLAGS.workdir}/best.json")
        if "comparison" in summary:
            print(search_lib.describe_seeds(summary["comparison"]))
    elif summary["role"] == "worker":
        print(f"Worker done in {time.monotonic() - start:.0f} s: {summary['evaluated']} "
              f"candidates evaluated")
    return 0


def run_main():
    define_flags()
    flags.mark_flags_as_required(["supernet_dir", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run_main()
