"""Causal-LM training: model, data, parallelism, checkpoints, evaluation, export."""
