"""spos_tf.search.data: the fresh calibration stream (--calib_stream=fresh), rotating held-out
slices (--holdout_images_per_candidate) and the candidate index. The arithmetic is checked
against NumPy; the batches are read from the embedded digits at 8x8."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import spaces
from spos_tf.search import data as search_data
from spos_tf.data import DataConfig, build_dataset
from spos_tf.models.evaluate import PathEvaluator
from spos_tf.search.config import SearchConfig
from spos_tf.search.tuner import build_eval_data

SIZE, BATCH, BATCHES = 8, 32, 3  # 96 calibration images per candidate
CALIB_SPLIT, HOLDOUT_SPLIT = 1197, 300  # spos_digits: train, validation


def _positions(ranges):
    return np.concatenate([np.arange(start, stop) for start, stop in ranges])


def _expected_window(n, m, seed, k):
    """Candidate k's examples, computed position by position: stream position p is example
    (offset of epoch p // n + p % n) mod n."""
    p = np.arange(k * m, (k + 1) * m)
    offsets = np.array([search_data.epoch_offset(seed, e, n) for e in range(p[-1] // n + 1)])
    return (offsets[p // n] + p % n) % n


@pytest.mark.parametrize("n, m", [(50, 16), (50, 50), (5, 12), (1197, 96)])
def test_calib_window_is_the_stream_position_by_position(n, m):
    seed = 3
    windows = [_positions(search_data.calib_window(n, m, seed, k)) for k in range(12)]
    for k, window in enumerate(windows):
        np.testing.assert_array_equal(window, _expected_window(n, m, seed, k))
    stream = np.concatenate(windows)
    for e in range(len(stream) // n):  # every epoch holds every example once
        assert sorted(stream[e * n : (e + 1) * n]) == list(range(n))
    if m < n:  # consecutive candidates inside an epoch see different images
        assert not set(windows[0]) & set(windows[1])
    other = [_positions(search_data.calib_window(n, m, seed + 1, k)) for k in range(12)]
    assert any(not np.array_equal(a, b) for a, b in zip(windows, other))  # a function of seed


@pytest.mark.parametrize("total, n", [(1000, 100), (1050, 100), (300, 300), (250, 100)])
def test_holdout_slices_are_numpy_slices_and_cover_the_set(total, n):
    slices = np.arange(total // n * n).reshape(total // n, n)
    seen = set()
    for k in range(3 * len(slices) + 1):
        start, stop = search_data.holdout_slice(k, n, total)
        np.testing.assert_array_equal(np.arange(start, stop), slices[k % len(slices)])
        seen.update(range(start, stop))
    assert seen == set(range(total // n * n))  # all of them when n divides total


def test_sub_spec_maps_positions_onto_the_splits_instructions():
    instructions = [("train", 100, 150), ("extra", 0, 30)]
    spec = search_data.sub_spec(instructions, [(40, 60), (0, 5)])
    assert spec == "train[140:150]+extra[0:10]+train[100:105]"
    with pytest.raises(ValueError, match="select no example"):
        search_data.sub_spec(instructions, [(80, 90)])


@pytest.fixture(scope="module")
def data(data_dir):
    return DataConfig(data_dir=data_dir, image_size=SIZE)


def _config(**changes):
    base = dict(
        supernet_dir="s",
        workdir="w",
        calib_images=BATCH * BATCHES,
        calib_batch_size=BATCH,
        eval_batch_size=64,
    )
    return SearchConfig(**{**base, **changes}).validate()


def _arrays(ds):
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _stored(data, role, n):
    """The split's ``n`` images in stored order, evaluation preprocessing."""
    return _arrays(build_dataset(data, role, n, training=False, seed=0).take(1))


def _rows(images):
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_fixed_stream_is_the_first_batches_in_stored_order_for_every_candidate(data):
    calib, holdout, per_candidate = build_eval_data(data, _config(holdout_images=250), SIZE)
    assert isinstance(calib, tf.data.Dataset) and isinstance(holdout, tf.data.Dataset)
    today = build_dataset(
        data, "calib", BATCH, training=False, seed=0, repeat=True, drop_remainder=True
    ).take(BATCHES)
    for (x, y), (x0, y0) in zip(calib, today, strict=True):
        np.testing.assert_array_equal(x.numpy(), x0.numpy())
        np.testing.assert_array_equal(y.numpy(), y0.numpy())
    images, labels = _stored(data, "holdout", HOLDOUT_SPLIT)
    got_images, got_labels = _arrays(holdout)
    assert per_candidate == 250
    np.testing.assert_array_equal(got_images, images[:250])
    np.testing.assert_array_equal(got_labels, labels[:250])


def test_fresh_stream_gives_each_candidate_the_next_shuffled_images_resumably(data):
    config = _config(calib_stream="fresh", seed=5)
    calib, _, _ = build_eval_data(data, config, SIZE)
    stored_images, stored_labels = _stored(data, "calib", CALIB_SPLIT)
    m = BATCH * BATCHES
    first = [calib(k) for k in range(3)]  # candidates 0, 1, 2 in order, as a search asks
    windows = []
    for k, ds in enumerate(first):
        assert [tuple(x.shape) for x, _ in ds] == [(BATCH, SIZE, SIZE, 3)] * BATCHES
        images, labels = _arrays(ds)  # a second pass over ds (compared below with a first one)
        expected = _expected_window(CALIB_SPLIT, m, config.seed, k)
        np.testing.assert_array_equal(_rows(images), _rows(stored_images[expected]))
        assert sorted(labels) == sorted(stored_labels[expected])
        assert not np.array_equal(labels, stored_labels[expected])  # shuffled in the window
        windows.append((images, labels))
    assert not np.array_equal(windows[0][0], windows[1][0])
    # A resumed search (a new process) asks for candidate 2 first: the same batches, in order.
    resumed, _, _ = build_eval_data(data, config, SIZE)
    for k in (2, 0):
        images, labels = _arrays(resumed(k))
        np.testing.assert_array_equal(images, windows[k][0])
        np.testing.assert_array_equal(labels, windows[k][1])
    # Another seed: another stream.
    other, _, _ = build_eval_data(data, dataclasses.replace(config, seed=6), SIZE)
    assert not np.array_equal(_arrays(other(0))[1], windows[0][1])


def test_fresh_augmented_stream_is_reproducible_and_differs_per_candidate(data):
    config = _config(calib_stream="fresh", calib_augment=True)
    calib, _, _ = build_eval_data(data, config, SIZE)
    plain, _, _ = build_eval_data(data, dataclasses.replace(config, calib_augment=False), SIZE)
    again, _, _ = build_eval_data(data, config, SIZE)
    a0, a1 = _arrays(calib(0)), _arrays(calib(1))
    b0 = _arrays(again(0))
    np.testing.assert_array_equal(a0[0], b0[0])
    np.testing.assert_array_equal(a0[1], b0[1])
    assert not np.array_equal(a0[0], a1[0])
    p0 = _arrays(plain(0))
    np.testing.assert_array_equal(a0[1], p0[1])  # same window, same shuffle
    assert not np.array_equal(a0[0], p0[0])  # but augmented


@pytest.mark.parametrize("cache_mb", [4096, 0])
@pytest.mark.parametrize("total, n", [(250, 100), (None, 100)])
def test_rotating_holdout_scores_candidate_k_on_its_numpy_slice(data, total, n, cache_mb):
    config = _config(holdout_images=total, holdout_images_per_candidate=n, cache_mb=cache_mb)
    _, holdout, per_candidate = build_eval_data(data, config, SIZE)
    assert per_candidate == n and holdout.num_slices == (total or HOLDOUT_SPLIT) // n
    images, labels = _stored(data, "holdout", HOLDOUT_SPLIT)
    slices = np.arange(holdout.num_slices * n).reshape(-1, n)
    seen = set()
    for k in range(holdout.num_slices + 2):
        got_images, got_labels = _arrays(holdout(k))
        rows = slices[k % len(slices)]
        np.testing.assert_array_equal(got_images, images[rows])
        np.testing.assert_array_equal(got_labels, labels[rows])
        seen.update(rows.tolist())
    assert seen == set(range(holdout.num_slices * n))


def test_more_images_per_candidate_than_the_held_out_split_is_refused(data):
    with pytest.raises(ValueError, match="--holdout_images_per_candidate=400 exceeds the 300 held"):
        build_eval_data(data, _config(holdout_images_per_candidate=400), SIZE)


def test_evaluator_gives_each_candidate_its_own_data_without_retracing():
    """Per-candidate data: ``evaluator(arch, index=k)`` calibrates on ``calib(k)`` and scores on
    ``holdout(k)``; without an index, the architecture's own index; one trace of each loop."""
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    net = spos_tf.build_supernet(space, seed=3)
    asked = []

    def data_of(what):
        def make(k):
            asked.append((what, k))
            rng = np.random.default_rng(k)
            x = rng.normal(size=(40, 8, 8, 3)).astype("float32")
            return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 10, 40))).batch(20)

        return make

    evaluator = PathEvaluator(net, data_of("calib"), data_of("holdout"), num_calib_batches=2)
    assert evaluator.per_candidate
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    for k in (4, 7, 4):
        evaluator(arch, index=k)
    evaluator(arch)
    fallback = search_data.arch_index(arch)
    assert asked == [(what, k) for k in (4, 7, 4, fallback) for what in ("calib", "holdout")]
    assert (evaluator.calib_traces, evaluator.eval_traces) == (1, 1)
    with pytest.raises(ValueError, match=r"pass the candidate's index, e.g. evaluator\(arch"):
        evaluator.evaluate()
    with pytest.raises(ValueError, match="candidate index must be an integer >= 0"):
        evaluator(arch, index=-1)
