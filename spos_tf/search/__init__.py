"""The search library's public names in one import (``from spos_tf import search``; the app is
``python -m spos_tf.search``, :mod:`spos_tf.search.__main__`).

The search is split by job; each module is one idea:

- :mod:`spos_tf.search.config`: :class:`SearchConfig` (the flags of ``python -m spos_tf.search``),
  BitOps budgets, the oracle's cost constraint;
- :mod:`spos_tf.search.tuner`: the oracle (proposes) and :class:`SupernetTuner` (scores on the
  supernet), the restored supernet and its evaluation data;
- :mod:`spos_tf.search.data`: the images of candidate ``k``: the fresh calibration stream and the
  rotating held-out slices;
- :mod:`spos_tf.search.results`: the history rows and best record, and the files a search writes
  (``history.csv``, ``best.json``, ``search.png``, HParams);
- :mod:`spos_tf.search.seeds`: evolution vs random search over seeds;
- :mod:`spos_tf.search.run`: ``run`` and :func:`run_seeds`, which wire them up (``run`` is
  reached as ``spos_tf.search.run.run``: the package attribute ``run`` is the submodule).

The names resolve lazily: importing the package stays TensorFlow-free (the oracles)."""

from spos_tf._lazy import lazy_exports

_LAZY = {
    "InfeasibleConstraintError": ("spos_tf.search.oracle", "InfeasibleConstraintError"),
    "ALGORITHM_CHOICES": ("spos_tf.search.config", "ALGORITHM_CHOICES"),
    "ALGORITHMS": ("spos_tf.search.config", "ALGORITHMS"),
    "CALIB_STREAMS": ("spos_tf.search.config", "CALIB_STREAMS"),
    "COSTS": ("spos_tf.search.config", "COSTS"),
    "NEUTRAL": ("spos_tf.search.config", "NEUTRAL"),
    "SearchConfig": ("spos_tf.search.config", "SearchConfig"),
    "arch_costs": ("spos_tf.search.config", "arch_costs"),
    "budget_bits": ("spos_tf.search.config", "budget_bits"),
    "build_constraint": ("spos_tf.search.config", "build_constraint"),
    "resolve_limits": ("spos_tf.search.config", "resolve_limits"),
    "FreshCalibration": ("spos_tf.search.data", "FreshCalibration"),
    "RotatingHoldout": ("spos_tf.search.data", "RotatingHoldout"),
    "arch_index": ("spos_tf.search.data", "arch_index"),
    "calib_window": ("spos_tf.search.data", "calib_window"),
    "holdout_slice": ("spos_tf.search.data", "holdout_slice"),
    "BEST_FILE": ("spos_tf.search.results", "BEST_FILE"),
    "CONFIG_FILE": ("spos_tf.search.results", "CONFIG_FILE"),
    "HISTORY_FILE": ("spos_tf.search.results", "HISTORY_FILE"),
    "HPARAMS_DIR": ("spos_tf.search.results", "HPARAMS_DIR"),
    "PLOT_FILE": ("spos_tf.search.results", "PLOT_FILE"),
    "SEARCH_ENTRIES": ("spos_tf.search.results", "SEARCH_ENTRIES"),
    "SEEDS_FILE": ("spos_tf.search.results", "SEEDS_FILE"),
    "Results": ("spos_tf.search.results", "Results"),
    "best_record": ("spos_tf.search.results", "best_record"),
    "best_index": ("spos_tf.search.results", "best_index"),
    "pick_values": ("spos_tf.search.results", "pick_values"),
    "best_row": ("spos_tf.search.results", "best_row"),
    "best_over_seeds": ("spos_tf.search.results", "best_over_seeds"),
    "history_columns": ("spos_tf.search.results", "history_columns"),
    "history_rows": ("spos_tf.search.results", "history_rows"),
    "write_history": ("spos_tf.search.results", "write_history"),
    "write_hparams": ("spos_tf.search.results", "write_hparams"),
    "write_outputs": ("spos_tf.search.results", "write_outputs"),
    "write_plot": ("spos_tf.search.results", "write_plot"),
    "check_workdir": ("spos_tf.search.run", "check_workdir"),
    "role": ("spos_tf.search.run", "role"),
    "run_seeds": ("spos_tf.search.run", "run_seeds"),
    "best_so_far": ("spos_tf.search.seeds", "best_so_far"),
    "compare_seeds": ("spos_tf.search.seeds", "compare_seeds"),
    "describe_seeds": ("spos_tf.search.seeds", "describe_seeds"),
    "seed_dir": ("spos_tf.search.seeds", "seed_dir"),
    "write_seeds_plot": ("spos_tf.search.seeds", "write_seeds_plot"),
    "OBJECTIVE": ("spos_tf.search.tuner", "OBJECTIVE"),
    "EvaluationError": ("spos_tf.search.tuner", "EvaluationError"),
    "SupernetTuner": ("spos_tf.search.tuner", "SupernetTuner"),
    "build_eval_data": ("spos_tf.search.tuner", "build_eval_data"),
    "load_supernet": ("spos_tf.search.tuner", "load_supernet"),
    "load_supernet_config": ("spos_tf.search.tuner", "load_supernet_config"),
    "make_evaluator": ("spos_tf.search.tuner", "make_evaluator"),
    "make_oracle": ("spos_tf.search.tuner", "make_oracle"),
}
# ``run`` is not re-exported: it is the name of the submodule spos_tf.search.run (whose ``run``
# function starts a search), and a package attribute cannot be both.
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
