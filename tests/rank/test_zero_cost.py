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
