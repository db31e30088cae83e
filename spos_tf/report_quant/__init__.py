"""Side-by-side table of a mixed-precision search (``python -m spos_tf.report_quant``)."""
