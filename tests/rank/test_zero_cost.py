"""Zero-cost proxies: SynFlow against a direct computation."""

import numpy as np
import tf_keras as keras

from spos_tf import spaces
from spos_tf.rank import zero_cost


def test_synflow_equals_a_direct_computation_on_a_two_layer_network():
    """f(x) = W2 relu(W1 x + b1) on |weights| and x = 1: R = 1'|W2| (|W1| 1 + |b1|), and
    the score is sum |W1 * dR/dW1| + sum |W2 * dR/dW2| (biases not summed), by hand in numpy."""
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)]
    )
    w1, b1, w2, b2 = (rng.normal(size=v.shape).astype("float32") for v in model.variables)
    model.set_weights([w1, b1, w2, b2])
    a1, a2, ab1 = np.abs(w1).astype(float), np.abs(w2).astype(float), np.abs(b1).astype(float)
    hidden = np.ones(5) @ a1 + ab1  # positive, so the ReLU passes it
    grad_w2 = np.outer(hidden, np.ones(3))  # dR/dW2[i, j] = hidden[i]
    grad_w1 = np.outer(np.ones(5), a2.sum(axis=1))  # dR/dW1[i, j] = sum_k |W2[j, k]|
    expected = (a1 * grad_w1).sum() + (a2 * grad_w2).sum()
    assert np.isclose(zero_cost.synflow(model), expected, rtol=1e-6)
    np.testing.assert_array_equal(model.get_weights()[0], w1)  # weights restored (signs too)


def test_synflow_of_nasbench201_cells_prefers_convolutions():
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    convs = zero_cost.synflow_of(space, space.parse("3,3,3,3,3,3"))
    skips = zero_cost.synflow_of(space, space.parse("1,1,1,1,1,1"))
    assert convs > skips > 0


def _taps_model(rng):
    """x -> relu(W1 x + b1) -> relu(W2 . + b2): two ReLUs through spos_tf's tapped ``relu``."""
    from spos_tf.models import blocks

    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(16),
            keras.layers.Lambda(blocks.relu),
            keras.layers.Dense(12),
            keras.layers.Lambda(blocks.relu),
        ]
    )
    model.set_weights([rng.normal(size=v.shape).astype("float32") for v in model.variables])
    return model


def test_naswot_equals_a_hand_computation_on_a_two_layer_network():
    """K[i, j] = (ReLU units) - (Hamming distance of the codes of images i and j), over both
    ReLUs, by loops here; the score is the sum of the logs of K's eigenvalues."""
    rng = np.random.default_rng(0)
    model = _taps_model(rng)
    w1, b1, w2, b2 = model.get_weights()
    x = rng.normal(size=(6, 5)).astype("float32")
    h1 = x @ w1 + b1
    h2 = np.maximum(h1, 0) @ w2 + b2
    codes = np.concatenate([h1 > 0, h2 > 0], axis=1)  # 28 units per image
    n, units = codes.shape
    k = np.array(
        [[units - np.sum(codes[i] != codes[j]) for j in range(n)] for i in range(n)], float
    )
    eig = np.linalg.eigvalsh(k)
    assert eig.min() > 0  # this draw separates the 6 images: K is positive definite
    assert np.isclose(zero_cost.naswot(model, x), np.sum(np.log(eig)), rtol=1e-9)
    from spos_tf.models import blocks

    assert blocks.RELU_TAPS == []  # the tap is gone afterwards


def test_naswot_of_identical_images_is_minus_infinity_and_one_image_is_refused():
    model = _taps_model(np.random.default_rng(1))
    twins = np.ones((3, 5), "float32")
    assert zero_cost.naswot(model, twins) == float("-inf")
    import pytest

    with pytest.raises(ValueError, match="at least 2 images"):
        zero_cost.naswot(model, twins[:1])


def test_relu_taps_see_every_relu_of_a_nasbench201_network():
    """With one cell per stage: a ReLU per conv edge (3 stages x 6 edges when all are convs),
    2 per reduction block (2 blocks) and the head's one; skips and pools have none."""
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    import spos_tf

    for arch, expected in (
        ("3,3,3,3,3,3", 18 + 4 + 1),
        ("1,1,4,1,4,1", 4 + 1),
        ("2,1,1,1,1,3", 6 + 5),
    ):
        seen = []
        model = spos_tf.build_standalone(space, space.parse(arch))
        with zero_cost.relu_taps(seen.append):
            model(x, training=True)
        assert len(seen) == expected, arch
