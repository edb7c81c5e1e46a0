"""Cohort drift in DiffAE latent space: a two-sample test with a permutation p-value."""
