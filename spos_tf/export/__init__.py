"""Export of a stand-alone network: SavedModel, TFLite float/int8/int4 (``python -m spos_tf.export``; the library is :mod:`spos_tf.export.run`)."""
