"""``spos_digits``: scikit-learn's handwritten digits as a TFDS data set (the offline default).

The 1,797 real 8x8 grey-scale digit images of ``sklearn.datasets.load_digits`` (UCI optical
recognition of handwritten digits, pixel values 0..16, ten classes) ship inside the scikit-learn
wheel, so this builder prepares in about a second with no network. It goes through the same
``tfds.builder(...).as_dataset(...)`` path as ImageNet, so the tiny twin of every flag file
exercises the real input pipeline.

Contract of the prepared data:

* ``image``: ``uint8 [8, 8, 1]``, ``round_half_up(v * 255 / 16)`` of sklearn's value ``v`` (0 -> 0,
  8 -> 128, 16 -> 255); see :func:`scale_to_uint8`.
* ``label``: ``ClassLabel`` with names ``"0"``..``"9"``, equal to ``load_digits().target``.
* ``index``: ``int64``, the row of the example in ``load_digits()`` (lets tests and users trace an
  example back to its source).
* splits (:func:`split_indices`): ``train`` 1197, ``validation`` 300 (held out for architecture
  search), ``test`` 300; disjoint, together all 1797 rows, stratified by class to within one
  example per class, fixed for ever by ``SPLIT_SEED`` and NumPy's frozen legacy ``RandomState``.

Importing this module registers the builder, so ``tfds.builder("spos_digits", data_dir=...)``
works after ``import spos_tf.data``.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NAME = "spos_digits"
SPLIT_SEED = 0
SPLIT_SIZES = {"test": 300, "validation": 300}  # "train" takes the remaining 1197
NUM_EXAMPLES = 1797
NUM_CLASSES = 10


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Maps sklearn's digit intensities 0..16 to uint8 0..255, rounding halves up.

    Args:
      values: array of numbers in [0, 16] (any shape).

    Returns:
      ``uint8`` array of the same shape, ``floor(v * 255 / 16 + 0.5)``.
    """
    values = np.asarray(values, dtype=np.float64)
    return np.floor(values * 255.0 / 16.0 + 0.5).astype(np.uint8)


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Deterministic, class-stratified split of example rows into test/validation/train.

    Rows are shuffled with ``np.random.RandomState(seed)`` (a stream NumPy guarantees never to
    change), then every example gets the key ``(rank within its class + 0.5) / class size``; sorting
    by that key (ties by shuffled position) spreads each class evenly along the sequence, whose
    first 300 rows are ``test``, the next 300 ``validation`` and the rest ``train``.

    Args:
      labels: ``int`` class of every row, shape ``[N]``.
      seed: permutation seed; the published splits use ``SPLIT_SEED``.

    Returns:
      ``{"train", "validation", "test"}`` -> sorted ``int64`` row indices; disjoint, covering all
      rows.
    """
    labels = np.asarray(labels)
    order = np.random.RandomState(seed).permutation(len(labels))
    rank = np.empty(len(labels), dtype=np.float64)
    for cls in np.unique(labels):
        members = order[labels[order] == cls]  # rows of this class in shuffled order
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    position = np.empty(len(labels), dtype=np.int64)
    position[order] = np.arange(len(labels))
    sequence = np.lexsort((position, rank))  # by rank, ties by shuffled position
    n_test, n_val = SPLIT_SIZES["test"], SPLIT_SIZES["validation"]
    return {
        "test": np.sort(sequence[:n_test]),
        "validation": np.sort(sequence[n_test : n_test + n_val]),
        "train": np.sort(sequence[n_test + n_val :]),
    }


def _load_digits():
    from sklearn.datasets import load_digits  # imported lazily: only preparation needs sklearn

    digits = load_digits()
    return digits.images, digits.target


class SposDigits(tfds.core.GeneratorBasedBuilder):
    """TFDS builder ``spos_digits``; preparation is offline, writes ~0.3 MB into ``data_dir``."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn load_digits, 1197/300/300 stratified splits."}
    # No download, hence no checksums file to look up next to the code. TFDS 4.9.10 resolves that
    # file through `code_path`, which imports the `importlib_resources` back-port (declared by TFDS
    # for Python < 3.9 only); without a code path preparation needs neither.
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's 1,797 handwritten 8x8 digits (UCI optdigits test set), "
            "grey levels 0..16 scaled to 0..255.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=[str(i) for i in range(NUM_CLASSES)]),
                    "index": np.int64,
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        images, labels = _load_digits()
        return {
            name: self._generate_examples(images, labels, rows)
            for name, rows in split_indices(labels).items()
        }

    def _generate_examples(self, images, labels, rows):
        for row in rows:
            row = int(row)
            yield (
                row,
                {
                    "image": scale_to_uint8(images[row])[..., None],
                    "label": int(labels[row]),
                    "index": row,
                },
            )
