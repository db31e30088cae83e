"""The images a search scores a candidate on: the BN calibration stream (``--calib_stream``) and the
held-out images (``--holdout_images``, ``--holdout_images_per_candidate``).

Candidate index
---------------
Per-candidate data is a function of the candidate's index ``k``. In a search, ``k`` is the trial
number, ``int(trial.trial_id)`` (the ``trial_id`` column of ``history.csv``). KerasTuner numbers
trials 0, 1, 2, ... in the order the oracle hands them out, so for the evolutionary search ``k``
counts through the population and then through each generation's children. A resumed search keeps
the numbers of its finished candidates. The candidate that was running when the search was killed is
handed out again under its old number, and so is a retried one. In a distributed search a worker
gets the number from the chief's oracle. ``--algorithm=both`` numbers each algorithm's candidates
from 0, so evolution's and random search's k-th candidates get the same images. A caller that scores
architectures outside a search and passes no index (e.g. ``spos_tf.rank``) gets :func:`arch_index`
of the architecture (see :meth:`spos_tf.models.evaluate.PathEvaluator.__call__`).

Calibration stream (``--calib_stream``)
----------------------------------------
Let ``m = num_calib_batches * calib_batch_size``, the calibration images per candidate.

``fixed`` (the default): every candidate recalibrates BN on the same first ``m`` images of the
calibration split (the training split) in stored order. With ``--calib_augment`` they go through
the training augmentation, with the same seeds every time. Candidates are compared on identical
inputs. The images are decoded once and kept in memory when they fit in ``--cache_mb``.

``fresh`` (the release's way): the release feeds BN from its shuffled training loader, and the
loader's iterator carries on from one candidate to the next. Here, candidate ``k`` recalibrates on
positions ``[k*m, (k+1)*m)`` of an endless stream over the calibration split of ``n`` examples:

- The stream is a sequence of epochs. Epoch ``e`` holds every example once, in stored order,
  rotated to start at a seeded offset (:func:`epoch_offset` of ``(seed, e)``). Stream position
  ``p`` is example ``(epoch_offset(seed, p // n) + p % n) mod n``
  (:func:`calib_window` gives a candidate's examples as index ranges).
- The window is read from the source in stored order (a TFDS slice: only the files holding the
  window are read), and shuffled with a buffer of ``min(m, DataConfig.shuffle_buffer)`` examples
  (a full shuffle when ``m`` fits in the buffer). With ``--calib_augment`` it is augmented (example
  seeds ``(window_seed, position in the window)``). Then it is cut into the ``num_calib_batches``
  batches. All of this is seeded by :func:`window_seed` of ``(seed, k)``.

Consecutive candidates therefore see new images until the split is used up, and the next epoch
starts somewhere else. The batches candidate ``k`` sees depend only on ``--seed``, ``k``, the data
and the settings. No iterator state is saved or replayed: a resumed search, a retried candidate and
a distributed worker read for candidate ``k`` exactly what an uninterrupted single-process search
reads. The only assumption is that TensorFlow's global seed is left unset, as spos_tf leaves it,
because ``tf.data``'s shuffle combines it with the op seed.

Difference from the release: the release draws each epoch as a uniform permutation of the whole
split. Here a candidate's ``m`` images are one contiguous block of the stored order, shuffled
within the block. TFDS writes every split in a shuffled order, and ImageFolder's order is a fixed
shuffle, so a block is a uniform sample of the split without replacement. A split stored sorted by
class would give class-skewed windows. Reading a block costs ``m`` images whatever ``k`` is. A
uniform permutation would need random access, or skipping up to an epoch per candidate.

Cost: ``fresh`` is never cached. Every candidate reads and decodes its own ``m`` images, plus the
set-up of one small tf.data pipeline: 0.1 to 0.3 s per candidate on 2 CPU cores with
``spos_digits``. ``fixed`` decodes its images once when they fit in ``--cache_mb``, and otherwise
also once per candidate. Under ``--calib_mode=batch_stats`` nothing is recalibrated, so the stream
is never read.

Held-out images (``--holdout_images_per_candidate``)
-----------------------------------------------------
Let ``H`` be ``--holdout_images`` (default: the whole held-out split) and ``N`` be
``--holdout_images_per_candidate``.

- ``N = 0`` (the default, the paper's): every candidate is scored on the same ``H`` images, the
  first ``H`` of the held-out split in stored order.
- ``N > 0``: the ``H`` images are cut into ``S = H // N`` slices of ``N`` consecutive images.
  Candidate ``k`` is scored on slice ``s = k mod S``, images ``[s*N, (s+1)*N)``
  (:func:`holdout_slice`).
  When ``N`` does not divide ``H``, the last ``H - S*N`` images are never used; set
  ``--holdout_images`` to a multiple of ``N`` to use them all.

The evaluation pass then costs ``N / H`` of the fixed set's, about ``H / N`` times cheaper per
candidate; calibration costs the same. The price: candidates on different slices are measured on
different images. Their accuracies differ by slice-to-slice noise of about
``sqrt(2 a (1 - a) / N)`` (0.008 at ``a = 0.6``, ``N = 8000``), on top of the differences that
rank them. The release scores each candidate on 40 batches of 200 = 8,000 validation images. Its
unshuffled loader carries on, so its windows start at ``8000 k mod 50000`` and wrap around the
split instead of being aligned slices.

The slices are decoded once and kept in memory when all ``S * N`` images fit in ``--cache_mb``
(the same memory the fixed set takes). Otherwise each candidate reads its own slice from the
source as a TFDS slice, and no other image is decoded.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spos_tf.spaces.space import arch_index, check_index  # noqa: F401  (re-exported)

__all__ = [
    "arch_index",
    "epoch_offset",
    "window_seed",
    "calib_window",
    "holdout_slice",
    "sub_spec",
    "FreshCalibration",
    "RotatingHoldout",
]

# Tags that keep this module's seed sequences apart from each other and from the oracle's
# np.random.default_rng([seed, generation]).
_EPOCH_TAG, _WINDOW_TAG = 2201, 2202


def _draw(*entropy) -> int:
    """A 32-bit integer drawn from ``np.random.SeedSequence(entropy)``. NumPy keeps
    SeedSequence's output fixed across versions."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


def epoch_offset(seed: int, epoch: int, num_examples: int) -> int:
    """Where epoch ``epoch`` of the fresh calibration stream starts in the split's stored order
    (0 <= offset < num_examples). It depends only on ``(seed, epoch)``."""
    return _draw(_EPOCH_TAG, seed, epoch) % num_examples


def window_seed(seed: int, index: int) -> int:
    """The tf.data seed of candidate ``index``'s calibration window. It seeds the window's
    shuffle and its augmentation, and depends only on ``(seed, index)``."""
    return _draw(_WINDOW_TAG, seed, check_index(index))


def calib_window(num_examples: int, images: int, seed: int, index: int) -> list:
    """The examples of candidate ``index``'s window of the fresh calibration stream, as
    ``[(start, stop), ...]`` ranges of positions in the split's stored order, in stream order.

    The window covers stream positions ``[index * images, (index + 1) * images)``. Position ``p``
    is example ``(epoch_offset(seed, p // num_examples) + p % num_examples) % num_examples``, so
    the ranges cover exactly ``images`` examples. A window wider than the split covers it more
    than once.

    Raises:
      ValueError: ``num_examples`` or ``images`` < 1, or a negative ``index``.
    """
    index = check_index(index)
    if num_examples < 1 or images < 1:
        raise ValueError(f"need num_examples >= 1 and images >= 1, got {num_examples}, {images}")
    ranges = []
    position, end = index * images, (index + 1) * images
    while position < end:
        epoch, i = divmod(position, num_examples)
        take = min(num_examples - i, end - position)  # stay inside this epoch
        start = (epoch_offset(seed, epoch, num_examples) + i) % num_examples
        first = min(take, num_examples - start)
        ranges.append((start, start + first))
        if take > first:  # the rotated epoch wraps past the split's end
            ranges.append((0, take - first))
        position += take
    return ranges


def holdout_slice(index: int, per_candidate: int, total: int) -> tuple:
    """``(start, stop)``: the held-out images of candidate ``index``, slice
    ``index mod (total // per_candidate)`` of ``per_candidate`` images, among the first
    ``total`` held-out images.

    Raises:
      ValueError: ``per_candidate`` not in ``[1, total]``, or a negative ``index``.
    """
    index = check_index(index)
    if not 1 <= per_candidate <= total:
        raise ValueError(
            f"--holdout_images_per_candidate={per_candidate} must be in [1, {total}] (the "
            f"held-out images it slices); lower it or raise --holdout_images"
        )
    s = index % (total // per_candidate)
    return s * per_candidate, (s + 1) * per_candidate


def sub_spec(instructions, ranges) -> str:
    """The TFDS split spec of the examples ``ranges`` (``[(start, stop)]``, positions in the
    concatenation of ``instructions``, a source's absolute ``[(split, from, to)]``), e.g.
    ``"train[1200:1300]+train[0:28]"``, in the order of ``ranges``."""
    parts = []
    for start, stop in ranges:
        offset = 0
        for split, begin, end in instructions:
            lo, hi = max(start, offset), min(stop, offset + end - begin)
            if lo < hi:
                parts.append(f"{split}[{begin + lo - offset}:{begin + hi - offset}]")
            offset += end - begin
    if not parts:
        raise ValueError(f"ranges {ranges} select no example of {instructions}")
    return "+".join(parts)


def _absolute(data, field: str) -> list:
    from spos_tf.data import sources

    source = sources.open_source(data)
    resolved = data.resolved(source.defaults)
    return source.absolute(getattr(resolved, field), field)


class FreshCalibration:
    """``index -> tf.data.Dataset``: candidate ``index``'s calibration batches of the fresh stream
    (see the module docstring). Each call builds a new pipeline; every pass over it, and over
    any other pipeline built for the same index, yields the same batches.

    Args:
      data: the supernet run's :class:`~spos_tf.data.DataConfig` (its ``train_split`` is the
        calibration split).
      num_batches, batch_size: ``num_batches`` batches of ``batch_size`` per candidate.
      seed: the stream's seed (the search's ``--seed``).
      augment: apply the training augmentation (``--calib_augment``).
    """

    def __init__(self, data, num_batches: int, batch_size: int, seed: int, augment: bool):
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
        self.images = num_batches * batch_size
        self.instructions = _absolute(data, "train_split")
        self.num_examples = sum(end - begin for _, begin, end in self.instructions)

    def ranges(self, index: int) -> list:
        """:func:`calib_window` of candidate ``index`` (positions in the calibration split)."""
        return calib_window(self.num_examples, self.images, self.seed, index)

    def spec(self, index: int) -> str:
        """The TFDS split spec of candidate ``index``'s window."""
        return sub_spec(self.instructions, self.ranges(index))

    def __call__(self, index: int):
        from spos_tf.data import build_dataset

        window = dataclasses.replace(self.data, train_split=self.spec(index), cache=False)
        return build_dataset(
            window,
            "calib",
            self.batch_size,
            training=True,  # shuffle the window (seeded)
            seed=window_seed(self.seed, index),
            repeat=False,
            drop_remainder=True,
            augment=self.augment,
            reshuffle_each_iteration=False,  # every pass over it: the same batches
        )


class RotatingHoldout:
    """``index -> tf.data.Dataset``: the held-out batches of candidate ``index``, its
    :func:`holdout_slice` (see the module docstring).

    Args:
      data: the supernet run's :class:`~spos_tf.data.DataConfig` (its ``holdout_split``).
      total: the held-out images the slices cut (``--holdout_images``, or the whole split).
      per_candidate: images per slice (``--holdout_images_per_candidate``).
      batch_size: evaluation batch size.
      cache: a function ``(dataset, num_images) -> dataset`` that caches a slice when it should;
        called for every slice when the instance is built. ``None`` builds each slice when asked.

    Raises:
      ValueError: ``per_candidate`` not in ``[1, total]``.
    """

    def __init__(self, data, total: int, per_candidate: int, batch_size: int, cache=None):
        holdout_slice(0, per_candidate, total)  # checks the bounds
        self.data, self.total, self.per_candidate = data, total, per_candidate
        self.batch_size = batch_size
        self.num_slices = total // per_candidate
        self.instructions = _absolute(data, "holdout_split")
        self._slices = {}
        if cache is not None:
            for s in range(self.num_slices):
                self._slices[s] = cache(self._build(s), per_candidate)

    def bounds(self, index: int) -> tuple:
        """:func:`holdout_slice` of candidate ``index``: its images ``[start, stop)``."""
        return holdout_slice(index, self.per_candidate, self.total)

    def _build(self, s: int):
        from spos_tf.data import build_dataset

        start = s * self.per_candidate
        spec = sub_spec(self.instructions, [(start, start + self.per_candidate)])
        part = dataclasses.replace(self.data, holdout_split=spec, cache=False)
        return build_dataset(part, "holdout", self.batch_size, training=False, seed=0)

    def __call__(self, index: int):
        s = self.bounds(index)[0] // self.per_candidate
        return self._slices[s] if s in self._slices else self._build(s)
