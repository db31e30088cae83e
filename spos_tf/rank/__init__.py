"""Ranking quality: score architectures on a supernet, compare with stand-alone or published accuracies (``python -m spos_tf.rank``; the library is :mod:`spos_tf.rank.run`)."""
