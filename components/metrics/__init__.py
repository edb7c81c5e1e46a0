"""Evaluation metrics that are pure functions of models and arrays."""
