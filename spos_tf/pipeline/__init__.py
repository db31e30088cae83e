"""The whole method in one call (``python -m spos_tf.pipeline``; the library is :mod:`spos_tf.pipeline.run`)."""
