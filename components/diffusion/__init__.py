"""Diffusion math: beta schedules and deterministic DDIM. No weights, no model imports."""

from components.diffusion.ddim import EpsModel, ddim_invert, ddim_path, ddim_sample, ddim_step, stochastic_x_T
from components.diffusion.schedule import NoiseSchedule, ddim_timesteps, make_betas, make_schedule

__all__ = [
    "EpsModel",
    "NoiseSchedule",
    "ddim_invert",
    "ddim_path",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "make_betas",
    "make_schedule",
    "stochastic_x_T",
]
