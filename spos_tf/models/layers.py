"""TF primitives with weight sharing by leading slices.

Every primitive allocates its variables at construction, at the largest shape it will ever serve
(so that ``tf.switch_case`` branches that never ran eagerly still own their variables), and a call at a
narrower width reads the *leading slice* of each variable: input channels are taken from the static
shape of the input, output channels from the ``out_channels`` argument. Nothing is copied, so a narrow
choice and a wide one share the same values. A width may also be a scalar int32 *tensor* (the
channel supernet passes the sampled width, so that one ``switch_case`` branch per op serves every
width): the slices are then dynamic and the channel dimension of the intermediate tensors is
unknown while tracing (:func:`channels`).

All variables are created with explicit initialisers seeded from the layer's construction order, so
the same seed builds the same weights.
"""

from __future__ import annotations

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from spos_tf.spaces.ops import Prim


class BNControl:
    """Shared BatchNorm update control of one model (a plain holder: not tracked by Keras).

    ``momentum`` is a scalar variable read by every :class:`BatchNorm` of the model, so that BN
    recalibration can run an exact cumulative average (momentum ``1 - 1/t`` at batch ``t``) in the
    same traced function as training, without retracing.
    """

    def __init__(self, momentum: float = 0.9):
        self.momentum = tf.Variable(
            momentum,
            trainable=False,
            dtype=tf.float32,
            name="bn_momentum",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.default = momentum
        # Read while tracing: True makes every BN of the model normalise with the statistics of
        # the batch it sees, without updating its moving statistics, even in inference mode
        # (scoring with ``calib_mode="batch_stats"``, ``spos_tf.models.evaluate``). Set it only around
        # the tracing of a function of its own (``PathEvaluator`` does).
        self.batch_stats = False


def _normal(stddev, seed):
    return keras.initializers.RandomNormal(stddev=stddev, seed=seed)


def channels(x):
    """The channel count of ``x``: its static ``int`` when known, else a scalar int32 tensor."""
    c = x.shape[-1]
    return c if c is not None else tf.shape(x)[-1]


def _is(value, static: int) -> bool:
    """``value`` (an int or a tensor) is statically known to equal ``static``."""
    return isinstance(value, int) and value == static


def pad_for(x, k: int, stride: int, padding: str, value: float = 0.0):
    """``(x, tf_padding)`` for a k x k window with ``stride`` under the space's ``padding``.

    ``"same"`` returns ``(x, "SAME")``: TF's SAME, which on an even input with stride 2 pads one
    pixel less at the top/left than at the bottom/right. ``"reference"`` pads ``k // 2`` on every
    side (PyTorch's ``padding=k//2``, as the authors' release) with ``value`` and returns
    ``(padded, "VALID")`` when ``stride > 1``; at stride 1 an odd window's SAME is already
    symmetric, so ``x`` and ``"SAME"`` come back unchanged (no extra op). Output sizes agree.
    """
    if padding == "same" or stride == 1:
        return x, "SAME"
    p = k // 2
    return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=value), "VALID"


class Conv(keras.layers.Layer):
    """k x k convolution without bias; ``call(x, out_channels=None)``. ``padding``: see
    :func:`pad_for`. A grouped ``prim`` (``groups`` > 1; kernel ``[k, k, cin/groups, cout]``) runs
    one conv per group on the split input and concatenates (TF has no CPU gradient for a grouped
    ``conv2d``); it is always used whole."""

    def __init__(
        self, prim: Prim, seed: int, stddev: float | None = None, padding: str = "same", **kwargs
    ):
        super().__init__(**kwargs)
        self.prim = prim
        self.padding = padding
        std = stddev if stddev is not None else 1.0 / prim.cin
        self.kernel = self.add_weight(
            "kernel",
            (prim.k, prim.k, prim.cin // prim.groups, prim.cout),
            initializer=_normal(std, seed),
            trainable=True,
        )

    def call(self, x, out_channels=None):
        cin = channels(x)
        cout = self.prim.cout if out_channels is None else out_channels
        kernel = self.kernel
        g = self.prim.groups
        x, mode = pad_for(x, self.prim.k, self.prim.stride, self.padding)
        if g > 1:  # per-group convs: TF has no CPU gradient for a grouped conv2d
            xs, ks = tf.split(x, g, axis=-1), tf.split(kernel, g, axis=-1)
            return tf.concat(
                [tf.nn.conv2d(xi, ki, self.prim.stride, mode) for xi, ki in zip(xs, ks)], axis=-1
            )
        if not (_is(cin, self.prim.cin) and _is(cout, self.prim.cout)):
            kernel = kernel[:, :, :cin, :cout]
            # A tensor bound makes the slice's static shape unknown in every axis; keep what is
            # known, so that a static ``cout`` gives a static output channel count (the next
            # block's channel shuffle needs it for its fast form, blocks.shuffle_split).
            kernel.set_shape(
                [self.prim.k, self.prim.k]
                + [v if isinstance(v, int) else None for v in (cin, cout)]
            )
        return tf.nn.conv2d(x, kernel, self.prim.stride, mode)


class DepthwiseConv(keras.layers.Layer):
    """k x k depthwise convolution without bias over the input's (leading) channels.
    ``padding``: see :func:`pad_for`."""

    def __init__(self, prim: Prim, seed: int, padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        self.prim = prim
        self.padding = padding
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel",
            (prim.k, prim.k, prim.cin, 1),
            initializer=_normal(1.0, seed),
            trainable=True,
        )

    def call(self, x):
        cin = channels(x)
        kernel = self.depthwise_kernel
        if not _is(cin, self.prim.cin):
            kernel = kernel[:, :, :cin, :]
            kernel.set_shape([self.prim.k, self.prim.k, cin if isinstance(cin, int) else None, 1])
        s = self.prim.stride
        x, mode = pad_for(x, self.prim.k, s, self.padding)
        return tf.nn.depthwise_conv2d(x, kernel, [1, s, s, 1], mode)


class BatchNorm(keras.layers.Layer):
    """Batch normalisation over the leading ``C`` channels of its statistics (C = input channels).

    Training mode normalises with batch statistics and updates the moving statistics of the used
    slice only: ``moving = m * moving + (1 - m) * batch`` with ``m = control.momentum``. Without
    ``affine`` there are no gamma/beta (as in the reference supernet).

    Under a mixed-precision policy (``spos_tf.models.precision``) the input and output are in the compute
    dtype (float16/bfloat16) while gamma, beta and the statistics stay float32 and are read as
    float32 (not autocast): the fused op takes them in float32 and accumulates the batch
    statistics in float32, as Keras' own BatchNormalization does.
    """

    def __init__(
        self,
        prim: Prim,
        control: BNControl,
        affine: bool,
        epsilon: float = 1.001e-5,
        beta_init: float = 1e-4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.prim = prim
        self.affine = affine
        self.epsilon = epsilon
        self._control = control
        c = prim.cin
        f32 = dict(dtype=tf.float32, experimental_autocast=False)
        stat = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.MEAN,
            **f32,
        )
        self.moving_mean = self.add_weight("moving_mean", (c,), initializer="zeros", **stat)
        self.moving_variance = self.add_weight("moving_variance", (c,), initializer="ones", **stat)
        if affine:
            self.gamma = self.add_weight("gamma", (c,), initializer="ones", trainable=True, **f32)
            self.beta = self.add_weight(
                "beta",
                (c,),
                initializer=keras.initializers.Constant(beta_init),
                trainable=True,
                **f32,
            )

    def _assign_leading(self, var, value, c):
        if _is(c, self.prim.cin):
            return var.assign(value)
        return var.assign(tf.concat([value, var[c:]], axis=0))

    def call(self, x, training=None):
        c = channels(x)
        full = _is(c, self.prim.cin)
        if self.affine:
            gamma = self.gamma if full else self.gamma[:c]
            beta = self.beta if full else self.beta[:c]
        else:
            gamma, beta = tf.ones([c], tf.float32), tf.zeros([c], tf.float32)
        mean = self.moving_mean if full else self.moving_mean[:c]
        var = self.moving_variance if full else self.moving_variance[:c]
        # One fused op (few intermediates): inside tf.switch_case every intermediate of every
        # branch becomes an output of the Case op for the gradient, so op count matters.
        y, batch_mean, batch_var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=mean,
            variance=var,
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=bool(training) or getattr(self._control, "batch_stats", False),
        )
        if training:
            # batch_var is the unbiased (n / (n - 1)) batch variance, as in the reference.
            m = tf.convert_to_tensor(self._control.momentum)  # float32, as the statistics
            self._assign_leading(self.moving_mean, m * mean + (1.0 - m) * batch_mean, c)
            self._assign_leading(self.moving_variance, m * var + (1.0 - m) * batch_var, c)
        return y


class Dense(keras.layers.Layer):
    """Fully-connected layer ``cin -> cout`` (optional bias) over the leading input features."""

    def __init__(self, prim: Prim, seed: int, stddev: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.prim = prim
        self.kernel = self.add_weight(
            "kernel", (prim.cin, prim.cout), initializer=_normal(stddev, seed), trainable=True
        )
        self.bias = (
            self.add_weight("bias", (prim.cout,), initializer="zeros", trainable=True)
            if prim.bias
            else None
        )

    def call(self, x):
        kernel = self.kernel
        if x.shape[-1] != self.prim.cin:
            kernel = kernel[: x.shape[-1]]
        y = tf.matmul(x, kernel)
        return y + self.bias if self.bias is not None else y


def make_primitive(
    name: str,
    prim: Prim,
    *,
    seed: int,
    control: BNControl,
    affine: bool,
    first: bool = False,
    padding: str = "same",
):
    """Builds the TF layer for one :class:`~spos_tf.spaces.ops.Prim` (the only place that maps kinds);
    ``padding`` (the space's) applies to convolutions, see :func:`pad_for`."""
    if prim.kind == "conv":
        return Conv(prim, seed, stddev=0.01 if first else None, padding=padding, name=name)
    if prim.kind == "dw":
        return DepthwiseConv(prim, seed, padding=padding, name=name)
    if prim.kind == "bn":
        return BatchNorm(prim, control, affine, name=name)
    if prim.kind == "fc":
        return Dense(prim, seed, name=name)
    raise ValueError(f"unknown primitive kind {prim.kind!r}")


def layer_weights(layer) -> dict:
    """``{short_name: variable}`` of a primitive (names as in :meth:`Prim.weight_shapes`)."""
    out = {}
    for attr in (
        "kernel",
        "depthwise_kernel",
        "bias",
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
    ):
        var = getattr(layer, attr, None)
        if isinstance(var, tf.Variable) or hasattr(var, "assign"):
            out[attr] = var
    return out
