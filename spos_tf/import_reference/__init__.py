"""Import of the authors' released checkpoints (``python -m spos_tf.import_reference``; the library is :mod:`spos_tf.import_reference.convert`)."""
