"""Architecture search on a trained supernet: :func:`run`, the library call behind
``python -m spos_tf.search``, and :func:`run_seeds`, the same once per seed.

Example::

    config = SearchConfig(supernet_dir="/tmp/qs", workdir="/tmp/qs_search", algorithm="both",
                          population_size=20, num_parents=5, num_crossover=8, num_mutation=8,
                          max_trials=100, max_macs=2.5e6, calib_images=512)
    summary = run(config)          # summary["best"] is what best.json holds, summary["rows"]
                                   # what history.csv holds

Roles (KerasTuner's, see the README's "Distributed search"):

- the *oracle* (:func:`spos_tf.search.tuner.make_oracle`) only proposes architectures under the
  constraint, never the same twice; its state lives in ``<workdir>/<algorithm>/`` (KerasTuner's
  project folder), so a killed search rerun with the same flags resumes: completed candidates are
  not evaluated again, the one that was running is evaluated again;
- the tuner's :meth:`~spos_tf.search.tuner.SupernetTuner.run_trial` scores one candidate on the
  supernet (set path, exact BN recalibration, held-out top-1);
- :func:`run` wires them up; :class:`~spos_tf.search.results.Results` writes the files (see
  :mod:`spos_tf.search.results`) and hands the same rows and best record back.

Checks before anything is written: the settings, the supernet run, the constraint's feasibility
(:meth:`~spos_tf.search.oracle_base.DiscreteSearchOracle.check_feasible`) and the workdir's previous
settings (:func:`spos_tf.runs.run_dir.check_workdir`, the check training uses); a failing check raises
and leaves the workdir untouched.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys

from spos_tf.runs import run_dir
from spos_tf.search import tuner as search_tuner
from spos_tf.runs.progress import ProgressBar
from spos_tf import costs as costs_lib
from spos_tf.search.config import (
    NEUTRAL,
    SEARCH_PRIORS,
    SearchConfig,
    build_constraint,
    resolve_limits,
)
from spos_tf.search.priors import naswot_images, zero_cost_of
from spos_tf.spaces.archs_file import archs_record, read_archs_file
from spos_tf.search.results import (
    ARCHS_FILE_RECORD,
    BEST_FILE,
    CONFIG_FILE,
    PLOT_FILE,
    SEARCH_ENTRIES,
    SEEDS_FILE,
    Results,
    best_over_seeds,
    best_record,
    open_priors,
)
from spos_tf.search.seeds import compare_seeds, seed_dir, write_seeds_plot
from spos_tf.search.tuner import SupernetTuner, load_supernet_config, make_oracle
from spos_tf.spaces.space import SearchSpace

__all__ = ["run", "run_seeds", "check_workdir", "role"]


def role() -> str:
    """``"single"``, or ``"chief"`` / ``"worker"`` of a KerasTuner distributed search (from the
    ``KERASTUNER_*`` environment variables).

    Raises:
      ValueError: only some of the three variables are set.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise ValueError(
            f"KERASTUNER_ORACLE_IP is set but {', '.join(missing)} is not; a "
            f"distributed search needs all three (see the README)"
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def check_workdir(config: SearchConfig) -> str:
    """``"new"``, ``"resume"`` or ``"overwrite"`` (:func:`spos_tf.runs.run_dir.check_workdir` over the
    search's entries and ``search_config.json``); writes nothing. A ``--seeds`` search resumed
    with more seeds (every stored seed still listed) is a resume: the stored seeds' searches are
    kept and the new ones run.

    Raises:
      run_dir.RunDirError: the workdir is a file or holds a search of different settings
        (dropping a stored seed counts as different).
    """
    compared = config
    stored = _stored_seeds(config.workdir)
    if config.seeds and stored and set(stored) <= set(config.seeds):
        compared = dataclasses.replace(config, seeds=stored)
    # a steered search's --score decides its parents, so a rerun must keep it
    neutral = tuple(n for n in NEUTRAL if n != "score") if config.steer_by_score else NEUTRAL
    return run_dir.check_workdir(
        config.workdir,
        compared.to_dict(),
        overwrite=config.overwrite,
        neutral=neutral,
        defaults=SearchConfig().to_dict(),
        entries=SEARCH_ENTRIES,
        config_file=CONFIG_FILE,
        what="a search",
    )


def _stored_seeds(workdir: str) -> tuple:
    """The ``seeds`` of the search stored in ``workdir`` (``()`` without one, or when its
    ``search_config.json`` is unreadable: :func:`run_dir.check_workdir` reports that)."""
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    if not os.path.exists(path):
        return ()
    try:
        return tuple(int(s) for s in run_dir.read_settings(path).get("seeds") or ())
    except (run_dir.RunDirError, AttributeError, TypeError, ValueError):
        return ()


def _start_workdir(config: SearchConfig, state: str, entries=SEARCH_ENTRIES, allowed=None) -> None:
    """Clears ``entries`` after an ``"overwrite"`` check, then writes ``search_config.json`` and,
    with ``allowed`` (the ``--archs_file`` architectures), their record ``archs_file.json``
    (:func:`~spos_tf.spaces.archs_file.archs_record`; kept on a resume)."""
    if state == "overwrite":
        run_dir.clear(config.workdir, entries)
    os.makedirs(config.workdir, exist_ok=True)
    run_dir.atomic_write_json(os.path.join(config.workdir, CONFIG_FILE), config.to_dict())
    record = os.path.join(config.workdir, ARCHS_FILE_RECORD)
    if allowed is not None and not os.path.isfile(record):
        run_dir.atomic_write_json(record, archs_record(config.archs_file, allowed))


def check_archs_file(config: SearchConfig, allowed, state: str) -> None:
    """On a resume, ``allowed`` (the architectures ``--archs_file`` lists now) must be those the
    search started with, as ``<workdir>/archs_file.json`` records them, in any order; the workdir
    check compares the path only. Writes nothing.

    Raises:
      run_dir.RunDirError: the file lists other architectures now (how many added and removed).
    """
    record = os.path.join(config.workdir, ARCHS_FILE_RECORD)
    if allowed is None or state != "resume" or not os.path.isfile(record):
        return
    now = {str(a) for a in allowed}
    then = set(run_dir.read_settings(record)["archs"])
    if now != then:
        raise run_dir.RunDirError(
            f"--archs_file={config.archs_file!r} lists other architectures than the search in "
            f"{config.workdir!r} started with ({len(now - then)} added, {len(then - now)} "
            f"removed; its record: {record!r}): restore the file, or pass --overwrite to start "
            f"the search again"
        )


def run(config: SearchConfig, stream=None) -> dict:
    """Runs (or resumes) the search of ``config``; see the module docstring.

    Returns:
      ``{"best": best.json record or None, "evaluated": candidates scored by this process,
      "trials": {algorithm: completed candidates}, "role": "single" | "chief" | "worker",
      "rows": the history.csv rows}``; with ``config.seeds`` see :func:`run_seeds`.

    Raises:
      ValueError: bad settings (including ``--algorithm=both`` in a distributed search);
      InfeasibleConstraintError: no architecture meets the constraint; run_dir.RunDirError /
      CheckpointError: bad supernet run or workdir; EvaluationError: scoring failed. Nothing is
      written to the workdir before these checks pass.
    """
    config = config.validate()
    stream = stream or sys.stdout
    if config.seeds:
        return run_seeds(config, stream)
    this = role()
    if this != "single" and config.algorithm == "both":
        raise ValueError(
            "--algorithm=both runs one search after the other, which a distributed "
            "search cannot: run --algorithm=evolution, then --algorithm=random into "
            "the same --workdir (the chief's outputs cover both)"
        )
    if this == "single" and config.wait_for_workers:
        raise ValueError(
            f"--wait_for_workers={config.wait_for_workers} applies to a distributed "
            f"search only (KERASTUNER_* unset here, so it would wait forever); "
            f"drop it"
        )
    run_config, space, oracles, allowed = _checked_oracles(config)
    writes = this != "worker"  # workers report to the chief's oracle and write no results
    state = check_workdir(config) if writes else None
    if writes:
        check_archs_file(config, allowed, state)

    priors = None  # opened before anything is written: a corrupt or foreign cache is refused
    if writes and state != "overwrite":
        priors = open_priors(config, space)
    evaluator = None
    if this != "chief":  # the chief only serves the oracle; each worker scores on its own copy
        evaluator = search_tuner.make_evaluator(config)
    if writes:
        _start_workdir(config, state, allowed=allowed)
    results = Results(config, space, run_config, priors) if writes else None
    prior = steering_prior(config, space, results) if evaluator is not None else None

    evaluated, trials = 0, {}
    for algorithm, oracle in oracles.items():
        tuner = _search(algorithm, oracle, space, evaluator, config, this, results, stream, prior)
        evaluated += tuner.evaluated
        if results is not None:
            trials[algorithm] = results.finish(tuner.oracle, algorithm)

    best = results.best if results is not None else None
    return {
        "best": best,
        "evaluated": evaluated,
        "trials": trials,
        "role": this,
        "rows": results.finished if results is not None else [],
    }


def run_seeds(config: SearchConfig, stream=None) -> dict:
    """The search of ``config`` once per seed of ``config.seeds`` (each a normal, resumable search
    in ``<workdir>/seed_<s>/``), then the comparison over seeds in ``workdir``: ``search.png``
    (:func:`~spos_tf.search.seeds.write_seeds_plot`), ``seeds.json``
    (:func:`~spos_tf.search.seeds.compare_seeds`) and ``best.json`` (the best candidate of all
    seeds, with the comparison under ``"seeds"`` and the seed under ``"seed"``): the pick by
    ``score`` among all seeds' candidates pooled (:func:`~spos_tf.search.results.best_over_seeds`;
    under a combination the ranks are taken over the pool, so it need not be any seed's own
    pick; each ``seed_<s>/best.json`` is that seed's pick among its own candidates).

    Returns:
      ``{"best": best.json record, "comparison": seeds.json record, "evaluated": candidates
      scored by this call, "role": "single", "rows": {seed: rows}}``.

    Raises:
      ValueError: in a distributed search (run one distributed search per seed instead), and
        as :func:`run`.
    """
    stream = stream or sys.stdout
    if role() != "single":
        raise ValueError(
            "--seeds runs one search after another in one process; for a "
            "distributed search run one search per --seed into its own --workdir"
        )
    run_config, space, _, allowed = _checked_oracles(config)
    state = check_workdir(config)
    check_archs_file(config, allowed, state)
    seed_dirs = (
        tuple(e for e in os.listdir(config.workdir) if re.fullmatch(r"seed_\d+", e))
        if state == "overwrite"
        else ()
    )
    _start_workdir(config, state, SEARCH_ENTRIES + seed_dirs, allowed)
    per_seed, evaluated = {}, 0
    for seed in config.seeds:
        if config.progress:
            print(f"seed {seed} ({config.seeds.index(seed) + 1}/{len(config.seeds)})", file=stream)
        summary = run(
            dataclasses.replace(
                config, seed=seed, seeds=(), overwrite=False, workdir=seed_dir(config.workdir, seed)
            ),
            stream,
        )
        per_seed[seed], evaluated = summary["rows"], evaluated + summary["evaluated"]
    comparison = compare_seeds(per_seed)
    run_dir.atomic_write_json(os.path.join(config.workdir, SEEDS_FILE), comparison)
    picked = best_over_seeds(per_seed, config.score)
    best = None
    if picked is not None:  # some seed evaluated a candidate
        seed, row = picked
        record = best_record(row, space, run_config, config, evaluated=len(per_seed[seed]))
        best = dict(record, seed=seed, seeds=comparison)
        run_dir.atomic_write_json(os.path.join(config.workdir, BEST_FILE), best)
    write_seeds_plot(
        os.path.join(config.workdir, PLOT_FILE),
        per_seed,
        f"{space.name}: seeds {', '.join(map(str, config.seeds))}",
    )
    return {
        "best": best,
        "comparison": comparison,
        "evaluated": evaluated,
        "role": "single",
        "rows": per_seed,
    }


def _checked_oracles(config: SearchConfig) -> tuple:
    """``(supernet run config, space, {algorithm: oracle}, allowed)`` after the checks that need
    the supernet run and the constraint (reads the supernet's ``config.json`` and
    ``--archs_file``; writes nothing). ``allowed``: the architectures ``--archs_file`` lists, in
    file order (None without it).

    Raises:
      run_dir.RunDirError: not a supernet run; InfeasibleConstraintError, ValueError: a
        constraint that no architecture meets or that the space cannot cost, a bad
        ``--archs_file``.
    """
    run_config = load_supernet_config(config.supernet_dir, config.supernet_step)
    space = run_dir.space_from_config(run_config)
    allowed = read_archs_file(space, config.archs_file) if config.archs_file else None
    if allowed == []:
        raise ValueError(
            f"--archs_file={config.archs_file!r} lists no architecture; write one per line "
            f"in text form (e.g. benchmarks/shrink_space.py --out)"
        )
    constraint = build_constraint(
        space,
        resolve_limits(config, space),
        config.latency_table,
        config.bitops_convention,
        allowed=allowed,
    )
    oracles = {a: make_oracle(a, config, space, constraint) for a in config.algorithms}
    for oracle in oracles.values():
        oracle.check_feasible()
    return run_config, space, oracles, allowed


def steering_prior(config: SearchConfig, space: SearchSpace, results=None) -> list | None:
    """``[(name, fn), ...]``: the priors each trial reports when ``config.steer_by_score`` (None
    otherwise), one per prior of ``config.score``: ``("macs", CostTable.macs)``, or a zero-cost
    proxy's ``results.priors[name]`` (the search's cache, so each candidate is computed once; a
    distributed worker, which has no ``results``, computes without one)."""
    if not config.steer_by_score:
        return None
    out = []
    for name in SEARCH_PRIORS[config.score]:
        if name == "macs":
            out.append((name, costs_lib.table(space).macs))
        elif results is not None and name in results.priors:
            out.append((name, results.priors[name]))
        else:
            images = None
            if name == "naswot":  # read once, on this worker's first candidate
                images = functools.cache(
                    lambda: naswot_images(config.supernet_dir, config.data_dir)
                )
            out.append((name, functools.partial(zero_cost_of, name, space, images=images)))
    return out


def _search(
    algorithm, oracle, space, evaluator, config, this, results, stream, prior=None
) -> SupernetTuner:
    """Runs one algorithm's KerasTuner search (serves it on a distributed chief, role ``this``);
    ``prior``: :func:`steering_prior`'s, reported by every trial."""
    bar = None

    def on_trial_end(tuner, trial):
        if bar is not None:
            best = tuner.oracle.get_best_trials(1)
            score = best[0].score if best and best[0].score is not None else float("nan")
            bar.update(int(trial.trial_id) + 1, best=score, last=tuner.last_accuracy)
        if this == "single":
            results.write(oracle, algorithm)  # history.csv and best.json stay current

    tuner = SupernetTuner(
        oracle,
        space,
        evaluator,
        on_trial_end=on_trial_end,
        prior=prior,
        directory=config.workdir,
        project_name=algorithm,
        overwrite=False,
    )
    if config.progress and this != "chief":
        done = len(tuner.oracle.trials) if this == "single" else 0
        print(
            f"{algorithm} search: {config.max_trials} candidates"
            + (f" ({done} handed out before)" if done else ""),
            file=stream,
        )
        bar = ProgressBar(config.max_trials, initial=done, stream=stream)
    elif this == "chief":
        print(
            f"{algorithm} search: serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']} until the workers finished "
            f"{config.max_trials} candidates",
            file=stream,
        )
    tuner.search(verbose=0)
    if bar is not None:
        bar.close()
    return tuner
