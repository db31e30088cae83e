"""Run plumbing shared by every stage: run directories, typed configs <-> flags, progress, TensorBoard HParams, the distribution strategy, enumerated choices."""
