"""A plain tf_keras SPOS supernet: the yardstick of ``benchmarks/supernet_vs_plain.py``.

The 20-block ShuffleNetV2 space of Table 2 (8.39M trainable parameters at 1000 classes) from stock
Keras layers (Conv2D, DepthwiseConv2D, BatchNormalization without affine, ReLU) and
``tf.switch_case`` per block, trained with *stock* SGD momentum: not masked, so unsampled choices
drift through momentum, no channel slicing, no sampler. It is the idea of
``../shared/bench/plain_switch_case_supernet.py`` re-written as an importable module (that file runs
its benchmark at import); a speed reference only, not a model to use.
"""

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

L = keras.layers


def _bn():
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, scale=False)


def _apply(layers, x, training):
    for layer in layers:
        x = (
            layer(x, training=training)
            if isinstance(layer, (L.BatchNormalization, L.Dropout))
            else layer(x)
        )
    return x


class PlainChoice(L.Layer):
    """One ShuffleNetV2 unit (choice 0-2: Shuffle 3/5/7, 3: Xception) of stock layers."""

    def __init__(self, cin, cout, mid, choice, stride, **kw):
        super().__init__(**kw)
        self.stride = stride
        outputs = cout - cin
        k = [3, 5, 7, 3][choice]
        if choice < 3:
            self.main = [
                L.Conv2D(mid, 1, use_bias=False),
                _bn(),
                L.ReLU(),
                L.DepthwiseConv2D(k, stride, padding="same", use_bias=False),
                _bn(),
                L.Conv2D(outputs, 1, use_bias=False),
                _bn(),
                L.ReLU(),
            ]
        else:
            self.main = []
            for i, c in enumerate([mid, mid, outputs]):
                self.main += [
                    L.DepthwiseConv2D(3, stride if i == 0 else 1, padding="same", use_bias=False),
                    _bn(),
                    L.Conv2D(c, 1, use_bias=False),
                    _bn(),
                    L.ReLU(),
                ]
        self.proj = (
            [
                L.DepthwiseConv2D(k, 2, padding="same", use_bias=False),
                _bn(),
                L.Conv2D(cin, 1, use_bias=False),
                _bn(),
                L.ReLU(),
            ]
            if stride == 2
            else []
        )

    def call(self, x, training=None):
        if self.stride == 1:
            h, w, c = x.shape[1], x.shape[2], x.shape[3]
            x = tf.reshape(x, [-1, h, w, c // 2, 2])
            x = tf.transpose(x, [0, 1, 2, 4, 3])
            proj, y = x[..., 0, :], x[..., 1, :]
        else:
            proj = y = x
        return tf.concat([_apply(self.proj, proj, training), _apply(self.main, y, training)], -1)


class PlainBlock(L.Layer):
    def __init__(self, cin, cout, mid, stride, **kw):
        super().__init__(**kw)
        self.choices = [PlainChoice(cin, cout, mid, c, stride) for c in range(4)]

    def call(self, x, index, training=None):
        return tf.switch_case(index, [lambda c=c: c(x, training=training) for c in self.choices])


class PlainSupernet(keras.Model):
    """``model(images, ops)`` with ``ops`` an int32 ``[20]`` tensor of op indices."""

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = [L.Conv2D(16, 3, 2, padding="same", use_bias=False), _bn(), L.ReLU()]
        self.blocks = []
        cin = 16
        for reps, cout in zip([4, 4, 8, 4], [64, 160, 320, 640]):
            for r in range(reps):
                self.blocks.append(
                    PlainBlock(cin if r == 0 else cin // 2, cout, cout // 2, 2 if r == 0 else 1)
                )
                cin = cout
        self.head = [
            L.Conv2D(1024, 1, use_bias=False),
            _bn(),
            L.ReLU(),
            L.GlobalAveragePooling2D(),
            L.Dropout(0.1),
            L.Dense(classes, use_bias=False),
        ]

    def call(self, x, ops, training=None):
        x = _apply(self.stem, x, training)
        for i, block in enumerate(self.blocks):
            x = block(x, ops[i], training=training)
        return _apply(self.head, x, training)


def build(image_size=224, classes=1000):
    """A plain supernet with every choice built (each choice called once eagerly)."""
    model = PlainSupernet(classes)
    x = tf.zeros([1, image_size, image_size, 3])
    for c in range(4):
        model(x, tf.fill([20], c))
    return model


def step_function(model, lr=0.1, momentum=0.9):
    """A traced training step ``step(images, labels, ops) -> loss`` (stock SGD momentum)."""
    opt = keras.optimizers.SGD(lr, momentum=momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y, ops):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, ops, training=True), tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step
