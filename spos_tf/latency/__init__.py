"""Latency lookup tables and their measurement (``python -m spos_tf.latency``)."""
