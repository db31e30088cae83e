"""The float model code: layers, choice blocks, cells, the supernet, stand-alone networks, the masked optimizers, path sampling, evaluation with BN recalibration."""
