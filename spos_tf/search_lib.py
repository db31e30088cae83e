"""The search library's public names in one import (``from spos_tf import search_lib``).

The search is split by job; each module is one idea:

- :mod:`spos_tf.search_config`: :class:`SearchConfig` (the flags of ``python -m spos_tf.search``),
  BitOps budgets, the oracle's cost constraint;
- :mod:`spos_tf.search_tuner`: the oracle (proposes) and :class:`SupernetTuner` (scores on the
  supernet), the restored supernet and its evaluation data;
- :mod:`spos_tf.search_data`: the images of candidate ``k``: the fresh calibration stream and the
  rotating held-out slices;
- :mod:`spos_tf.search_results`: the history rows and best record, and the files a search writes
  (``history.csv``, ``best.json``, ``search.png``, HParams);
- :mod:`spos_tf.search_seeds`: evolution vs random search over seeds;
- :mod:`spos_tf.search_run`: :func:`run` and :func:`run_seeds`, which wire them up.
"""

from spos_tf.oracle import InfeasibleConstraintError
from spos_tf.search_config import (
    ALGORITHM_CHOICES,
    ALGORITHMS,
    CALIB_STREAMS,
    COSTS,
    NEUTRAL,
    SearchConfig,
    arch_costs,
    budget_bits,
    build_constraint,
    resolve_limits,
)
from spos_tf.search_data import (
    FreshCalibration,
    RotatingHoldout,
    arch_index,
    calib_window,
    holdout_slice,
)
from spos_tf.search_results import (
    BEST_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    HPARAMS_DIR,
    PLOT_FILE,
    SEARCH_ENTRIES,
    SEEDS_FILE,
    Results,
    best_record,
    best_row,
    history_columns,
    history_rows,
    write_history,
    write_hparams,
    write_outputs,
    write_plot,
)
from spos_tf.search_run import check_workdir, role, run, run_seeds
from spos_tf.search_seeds import (
    best_so_far,
    compare_seeds,
    describe_seeds,
    seed_dir,
    write_seeds_plot,
)
from spos_tf.search_tuner import (
    OBJECTIVE,
    EvaluationError,
    SupernetTuner,
    build_eval_data,
    load_supernet,
    load_supernet_config,
    make_evaluator,
    make_oracle,
)

__all__ = [
    "ALGORITHM_CHOICES",
    "ALGORITHMS",
    "BEST_FILE",
    "CALIB_STREAMS",
    "CONFIG_FILE",
    "COSTS",
    "EvaluationError",
    "FreshCalibration",
    "HISTORY_FILE",
    "HPARAMS_DIR",
    "InfeasibleConstraintError",
    "NEUTRAL",
    "OBJECTIVE",
    "PLOT_FILE",
    "Results",
    "RotatingHoldout",
    "SEARCH_ENTRIES",
    "SEEDS_FILE",
    "SearchConfig",
    "SupernetTuner",
    "arch_costs",
    "arch_index",
    "best_record",
    "best_row",
    "best_so_far",
    "budget_bits",
    "build_constraint",
    "build_eval_data",
    "calib_window",
    "check_workdir",
    "compare_seeds",
    "describe_seeds",
    "history_columns",
    "history_rows",
    "holdout_slice",
    "load_supernet",
    "load_supernet_config",
    "make_evaluator",
    "make_oracle",
    "resolve_limits",
    "role",
    "run",
    "run_seeds",
    "seed_dir",
    "write_history",
    "write_hparams",
    "write_outputs",
    "write_plot",
    "write_seeds_plot",
]
