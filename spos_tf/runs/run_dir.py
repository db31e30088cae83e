"""The run directory (``--workdir``) of a training run, and how other apps read it back.

Layout (the contract the search and export apps rely on)::

    <workdir>/config.json       effective typed config (TrainConfig as JSON): "space",
                                "space_overrides" (kwargs of spos_tf.spaces.get), "seed", "arch"
                                (text form; null for a supernet), "data" (DataConfig fields), ...
    <workdir>/flags.txt         the effective flags (usable as --flagfile)
    <workdir>/checkpoints/      tf.train.CheckpointManager over tf.train.Checkpoint(model=...,
                                optimizer=..., data=<input iterator>, final_bn=...)
    <workdir>/metrics.jsonl     one JSON object per log / evaluation record; the last record of a
                                finished run holds "val_accuracy"
    <workdir>/tb/               TensorBoard scalars (tf.summary)
    <workdir>/workers/<task>/   checkpoints of non-chief MultiWorkerMirroredStrategy workers

Writes are atomic: ``config.json`` and ``metrics.jsonl`` rewrites go through a temporary file and
``os.replace`` (:func:`replacing` and the move under it, :func:`replace_path`: the package's one
atomic writer of files and folders, which the other apps use for their result files, plots,
exported SavedModels and HParams logs too);
TF writes a checkpoint's files before it updates the ``checkpoint`` index, so a killed run always
leaves a readable latest checkpoint.

Nothing here reads flags; TensorFlow is imported only by the functions that need it.

Why one module of this size: the run directory is one contract (layout, atomic writes, config
checks on resume, checkpoints), read by every app.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import uuid

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
TB_DIR = "tb"
WORKERS_DIR = "workers"
# Everything a run writes; --overwrite deletes exactly these (never other files in the folder).
INIT_FILE = "init_from.json"  # the checkpoint a --init_from run starts from (spos_tf.train.init)
SAMPLE_FROM_FILE = "sample_from.json"  # the architectures a --sample_from run trains
RUN_ENTRIES = (
    CONFIG_FILE,
    FLAGS_FILE,
    METRICS_FILE,
    CHECKPOINT_DIR,
    TB_DIR,
    WORKERS_DIR,
    INIT_FILE,
    SAMPLE_FROM_FILE,
)
SWAP_ATTEMPTS = 100  # swaps lost to concurrent writers before replace_path gives up


class RunDirError(ValueError):
    """A workdir that cannot be used as asked (different config, missing or unreadable files)."""


class CheckpointError(RunDirError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


# ------------------------------------------------------------------------------------- files
@contextlib.contextmanager
def replacing(path: str, *, folder: bool = False):
    """The one atomic writer of the package: yields a temporary path beside ``path`` (its folder
    created if needed), a file or, with ``folder=True``, an empty folder. When the block ends
    without an exception, a file is fsynced, and the result is moved onto ``path``
    (:func:`replace_path`); otherwise it is removed and ``path`` is left as it was.
    :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`save_figure` and
    :func:`spos_tf.runs.hparams.write_sessions` are built on it.

    Raises:
      RuntimeError, OSError: from :func:`replace_path`; ``path`` keeps its previous content.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    prefix = "." + os.path.basename(path) + "."
    if folder:
        tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=parent)
        os.close(fd)
    try:
        yield tmp
        if not folder:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        replace_path(tmp, path)
    finally:
        _discard(tmp)  # nothing left after a successful move


def replace_path(tmp: str, path: str) -> None:
    """Moves the complete file or folder ``tmp`` onto ``path`` (same file system), replacing the
    file or folder there; :func:`replacing` gives ``tmp``.

    A file is one ``os.replace`` (atomic on POSIX). A folder, which ``os.replace`` cannot put
    onto a non-empty one, is swapped in: the previous entry is moved aside under a name of its
    own (``<path>.old.<32 hex>``), ``tmp`` moved onto ``path``, the old copy removed; readers
    see the old or the new folder, or for a moment none. Concurrent writers of the same ``path``
    leave one complete folder, the last one swapped in (a swap overtaken by another writer's is
    retried); old copies that a crashed writer left (``<path>.old``, ``<path>.old.<32 hex>``) are
    removed.

    Raises:
      OSError: the move failed; the previous entry is put back where possible.
      RuntimeError: ``SWAP_ATTEMPTS`` concurrent writers' swaps won in a row.
    """
    if not os.path.isdir(tmp) or os.path.islink(tmp):
        os.replace(tmp, path)
        return
    path = os.path.abspath(path)
    for _ in range(SWAP_ATTEMPTS):
        old = f"{path}.old.{uuid.uuid4().hex}"  # unique: never collides with another writer
        try:
            os.replace(path, old)
        except FileNotFoundError:
            pass  # nothing there yet, or another writer moved it aside first
        try:
            os.replace(tmp, path)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not os.path.exists(path):
                with contextlib.suppress(OSError):
                    os.replace(old, path)  # best effort: put the previous entry back
                raise
            # another writer's complete folder landed in between: move it aside too, and retry
        finally:
            _discard(old)
    else:
        raise RuntimeError(
            f"could not swap {tmp} into {path}: {SWAP_ATTEMPTS} concurrent writers' swaps won "
            "in a row; write from fewer processes at once"
        )
    parent, base = os.path.split(path)
    pattern = re.escape(base) + r"\.old(\.[0-9a-f]{32})?"
    for name in os.listdir(parent):
        if re.fullmatch(pattern, name):
            _discard(os.path.join(parent, name))


def _discard(path: str) -> None:
    """Removes the file or folder ``path`` if it is there, ignoring errors (a leftover)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see :func:`replacing`)."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def atomic_write_json(path: str, record) -> None:
    """Writes ``record`` as indented, key-sorted JSON (one trailing newline) to ``path``
    atomically (see :func:`replacing`)."""
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def atomic_write_bytes(path: str, content: bytes) -> None:
    """Writes ``content`` to ``path`` atomically (see :func:`replacing`)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(content)


def save_figure(fig, path: str) -> None:
    """Saves the matplotlib figure ``fig`` as a PNG at ``path`` atomically (see
    :func:`replacing`) and closes it."""
    import matplotlib.pyplot as plt

    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def normalized(config: dict) -> dict:
    """``config`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config, sort_keys=True))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value and key != "space_overrides":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(old: dict, new: dict, neutral=(), defaults: dict | None = None) -> list:
    """``["learning_rate: 0.5 -> 0.1", ...]`` over the flattened keys (``data.name``), skipping
    the ``neutral`` keys (those that do not change a run's result). With ``defaults`` (the
    config's defaults, same layout), a setting that ``old`` lacks (written by a version that did
    not have it) counts as unchanged while ``new`` holds its default."""
    a, b = _flatten(normalized(old)), _flatten(normalized(new))
    d = _flatten(normalized(defaults)) if defaults else {}
    return [
        f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
        for k in sorted(set(a) | set(b))
        if k not in neutral
        and a.get(k) != b.get(k)
        and not (k not in a and k in d and b.get(k) == d[k])
    ]


def load_run_config(workdir: str) -> dict:
    """The ``config.json`` of a training run as a dict.

    Raises:
      RunDirError: ``workdir`` or its ``config.json`` is missing or not valid JSON.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isdir(workdir):
        raise RunDirError(
            f"workdir {workdir!r} does not exist; pass the --workdir of a finished "
            f"`python -m spos_tf.train` run"
        )
    if not os.path.isfile(path):
        raise RunDirError(
            f"{path} is missing: {workdir!r} is not a spos_tf.train run directory "
            f"(or the run failed before it started); train into it with "
            f"`python -m spos_tf.train --workdir={workdir} ...` first"
        )
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise RunDirError(
            f"{path} is unreadable ({e}); restore it from the flags in "
            f"{os.path.join(workdir, FLAGS_FILE)} by rerunning training with "
            f"--overwrite, or delete the workdir"
        ) from None
    if not isinstance(config, dict) or "space" not in config:
        raise RunDirError(f"{path} is not a spos_tf.train config (no 'space' field)")
    return upgrade_config(config)


def upgrade_config(config: dict) -> dict:
    """A training run's ``config.json`` in today's settings, so that runs written by an older
    version still resume and are still read by the other apps: ``calib_batches`` (BN
    recalibration batches of ``eval_batch_size`` images, before issue 21) becomes
    ``calib_images = calib_batches * eval_batch_size``, the same images in the same batches.
    Returns a new dict (``config`` itself when nothing is renamed)."""
    if "calib_batches" not in config or "eval_batch_size" not in config:
        return config
    out = dict(config)
    batches = out.pop("calib_batches")
    out.setdefault("calib_images", batches * out["eval_batch_size"])
    return out


def check_workdir(
    workdir: str,
    config: dict,
    *,
    overwrite: bool,
    neutral=(),
    defaults: dict | None = None,
    entries=None,
    config_file: str = CONFIG_FILE,
    what: str = "a run",
) -> str:
    """Decides how an app may use ``workdir``, without writing anything: the one resume check of
    training (``entries`` = :data:`RUN_ENTRIES`, ``config.json``), the search and the ranking.

    Args:
      workdir: the app's folder; files in it that are not among ``entries`` are never touched.
      config: the settings of this run, as the app writes them into ``config_file``.
      overwrite: the app's ``--overwrite``.
      neutral: keys (flattened, e.g. ``data.data_dir``) that may differ on resume.
      defaults: the settings' defaults: a setting an older version did not write counts as
        unchanged while ``config`` holds its default.
      entries: what the app writes (``--overwrite`` deletes exactly these); default
        :data:`RUN_ENTRIES`.
      config_file: the entry holding the settings of the run in ``workdir``.
      what: the app's results in the error messages (``"a search"``).

    Returns:
      ``"new"`` (absent folder, or none of ``entries`` in it), ``"resume"`` (same settings, modulo
      ``neutral`` keys and ``defaults``) or ``"overwrite"`` (``overwrite`` is set and the folder
      holds entries of a previous run).

    Raises:
      RunDirError: ``workdir`` is a file; holds ``what`` of other settings (the message lists the
        differences) or entries without ``config_file``, and ``overwrite`` is not set.
    """
    workdir = os.fspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise RunDirError(f"--workdir={workdir!r} is a file, not a folder; choose another path")
    entries = RUN_ENTRIES if entries is None else tuple(entries)
    ours = [e for e in entries if os.path.exists(os.path.join(workdir, e))]
    if not ours:
        return "new"  # a folder with unrelated files: a run adds its own entries next to them
    if overwrite:
        return "overwrite"
    path = os.path.join(workdir, config_file)
    if not os.path.exists(path):
        raise RunDirError(
            f"workdir {workdir!r} holds {ours} but no {config_file}: a run that failed while "
            f"starting, or a damaged one. Pass --overwrite to delete those entries and start "
            f"over, or use another --workdir"
        )
    old = load_run_config(workdir) if config_file == CONFIG_FILE else read_settings(path)
    diff = config_diff(old, config, neutral, defaults)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; ... ({len(diff)} differences)" if len(diff) > 8 else "")
        flags_file = os.path.join(workdir, FLAGS_FILE)
        saved = f" (saved in {flags_file})" if os.path.exists(flags_file) else ""
        raise RunDirError(
            f"workdir {workdir!r} holds {what} with other settings ({shown}). Rerun with the "
            f"same flags{saved} to resume it, use another --workdir, or pass --overwrite to "
            f"delete it and start over"
        )
    return "resume"


def read_settings(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RunDirError(
            f"{path} is unreadable ({e}); pass --overwrite to start over or use another --workdir"
        ) from None


def remove_path(path: str) -> None:
    """Deletes the file or folder ``path`` if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def clear(workdir: str, entries=None) -> None:
    """Deletes the entries a run writes (``entries``, default ``RUN_ENTRIES``) from ``workdir``,
    leaving any other file in place."""
    for entry in RUN_ENTRIES if entries is None else entries:
        remove_path(os.path.join(workdir, entry))


def write_config(workdir: str, config: dict, flags_text: str | None = None) -> None:
    os.makedirs(workdir, exist_ok=True)
    atomic_write_text(
        os.path.join(workdir, CONFIG_FILE),
        json.dumps(normalized(config), indent=2, sort_keys=True) + "\n",
    )
    if flags_text is not None:
        atomic_write_text(os.path.join(workdir, FLAGS_FILE), flags_text)


def checkpoint_dir(workdir: str, task: str | None = None) -> str:
    """The chief's checkpoint folder, or ``workers/<task>/checkpoints`` of a non-chief worker."""
    if task is None:
        return os.path.join(workdir, CHECKPOINT_DIR)
    return os.path.join(workdir, WORKERS_DIR, task, CHECKPOINT_DIR)


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, appended and flushed record by record."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.path = os.path.join(workdir, METRICS_FILE)
        self.enabled = enabled

    def read(self) -> list:
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        break  # a line cut by a kill: drop it and everything after
        return records

    def truncate_after(self, step: int) -> None:
        """Drops records written after ``step`` (by a run killed after its last checkpoint)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        keep = [r for r in self.read() if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()


# ------------------------------------------------------------------------------------- models
def space_from_config(config: dict):
    """The :class:`~spos_tf.spaces.space.SearchSpace` of a run config."""
    from spos_tf import spaces

    return spaces.get(config["space"], **config.get("space_overrides", {}))


def build_model(config: dict, space=None):
    """The (unrestored) model of a run config: :func:`spos_tf.build.build_from_config` on
    ``space`` (default :func:`space_from_config`). The model layer is imported here, lazily, so
    reading a workdir does not load TensorFlow."""
    from spos_tf import build

    return build.build_from_config(config, space or space_from_config(config))


def checkpoint_step(path: str) -> int:
    """The step of the checkpoint prefix ``path`` (``.../ckpt-<step>``, as this package names them)."""
    return int(os.fspath(path).rsplit("-", 1)[-1])


def saved_checkpoints(directory: str) -> dict:
    """``{step: checkpoint path prefix}`` of the checkpoints that ``directory``'s ``checkpoint``
    index lists (oldest first; empty without an index)."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(os.path.abspath(directory))
    paths = [] if state is None else state.all_model_checkpoint_paths
    return {checkpoint_step(p): p for p in paths}


def _index_state(directory: str):
    """The parsed ``checkpoint`` index of ``directory`` (a ``CheckpointState``; None without one).

    Raises:
      CheckpointError: the index is unreadable or names no checkpoint.
    """
    import tensorflow as tf

    directory = os.path.abspath(directory)
    index = os.path.join(directory, "checkpoint")
    if not os.path.exists(index):
        return None
    try:  # TF logs and returns None for an index it cannot parse
        state = tf.train.get_checkpoint_state(directory)
    except Exception as e:  # noqa: BLE001  (any failure to read the index means the same)
        state, reason = None, f"{type(e).__name__}: {e}"
    else:
        reason = "it does not parse as a CheckpointState"
    if state is None or not state.model_checkpoint_path:
        raise CheckpointError(
            f"the checkpoint index {index} is unreadable ({reason}). Fix: delete that file and "
            f"rerun (training then restarts from scratch), or pass --overwrite"
        )
    return state


def checkpoint_of_step(directory: str, step: int) -> str:
    """Path prefix of the checkpoint saved at ``step`` in ``directory``.

    Raises:
      CheckpointError: the index is unreadable, lists no checkpoint of ``step`` (the message
        names those it lists), or lists it but its files are missing.
    """
    state = _index_state(directory)  # None without an index; unreadable: CheckpointError
    paths = [] if state is None else state.all_model_checkpoint_paths
    saved = {checkpoint_step(p): p for p in paths}
    if step not in saved:
        listed = ", ".join(str(s) for s in saved) or "none"
        raise CheckpointError(
            f"no checkpoint of step {step} in {directory} (saved steps: {listed}). Fix: pass "
            f"one of the saved steps, or leave the step out to use the latest; a run keeps its "
            f"last --keep_checkpoints checkpoints, one every --checkpoint_every steps"
        )
    path = saved[step]
    if not os.path.exists(path + ".index"):
        raise CheckpointError(
            f"the checkpoint of step {step} ({path}) is listed in {directory}'s index but its "
            f"files are missing: pass another saved step"
        )
    return path


def latest_checkpoint(directory: str) -> str | None:
    """Path prefix of the latest checkpoint in ``directory`` (None if there is none).

    Raises:
      CheckpointError: the ``checkpoint`` index is unreadable, or names files that are missing.
    """
    # TF joins a relative entry of the index with the directory it is given; an absolute directory
    # keeps a relative --workdir (runs/quickstart) from being joined twice below.
    directory = os.path.abspath(directory)
    state = _index_state(directory)
    if state is None:
        return None
    path = state.model_checkpoint_path
    if not os.path.isabs(path):
        path = os.path.join(directory, path)
    if not os.path.exists(path + ".index"):
        raise CheckpointError(
            f"the checkpoint index in {directory} names {path}, whose files are missing. Fix: "
            f"delete {os.path.join(directory, 'checkpoint')} (or edit it to name an older "
            f"checkpoint), or pass --overwrite to start over"
        )
    return path


def read_checkpoint(checkpoint, path: str, *, partial: bool = False):
    """``checkpoint.read(path)`` with errors turned into :class:`CheckpointError`.

    Every object of ``checkpoint`` must be found in the file; with ``partial`` values in the file
    that ``checkpoint`` does not use (the optimizer, when reading only a model) are expected.
    """
    try:
        status = checkpoint.read(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except Exception as e:  # noqa: BLE001  (TF raises OpError, IndexError, AssertionError...)
        message = str(e).strip().splitlines()[0][:400] if str(e).strip() else type(e).__name__
        folder = os.path.dirname(path)
        raise CheckpointError(
            f"checkpoint {path} cannot be restored ({type(e).__name__}: {message}). It is damaged "
            f"or belongs to a different model. Fix: delete {path}.* and the 'checkpoint' index in "
            f"{folder} to fall back to an older checkpoint, or pass --overwrite to start "
            f"over"
        ) from None
    return status


def restore_model(workdir: str, strategy=None, step: int | None = None):
    """Rebuilds the trained model of ``workdir`` and loads its latest checkpoint's weights, or
    those of its checkpoint of ``step``.

    Args:
      workdir: a ``spos_tf.train`` run directory.
      strategy: build the model in this strategy's scope (default: the current strategy).
      step: load the checkpoint saved at this training step (one of those the checkpoint index
        lists: :func:`saved_checkpoints`) instead of the latest.

    Returns:
      ``(space, model, config)``: the search space, the supernet (``config["arch"]`` null) or the
      stand-alone network, and the run config dict. BN moving statistics are the checkpoint's.

    Raises:
      RunDirError: no ``config.json``; CheckpointError: no checkpoint, a damaged one, or no
        checkpoint of ``step`` (naming the saved steps).
    """
    import tensorflow as tf

    config = load_run_config(workdir)
    directory = checkpoint_dir(workdir)
    path = latest_checkpoint(directory) if step is None else checkpoint_of_step(directory, step)
    if path is None:
        raise CheckpointError(
            f"no checkpoint in {directory}: the run in {workdir!r} has not saved one yet. Train "
            f"longer (`python -m spos_tf.train --flagfile={os.path.join(workdir, FLAGS_FILE)}`), "
            f"or lower --checkpoint_every"
        )
    space = space_from_config(config)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(config, space)
    read_checkpoint(tf.train.Checkpoint(model=model), path, partial=True)
    return space, model, config
