"""The progress lines of steps and pipelines ("[gate] ...", "[agent 40.0%] ...") as log records.

They are INFO records of ZenML's logger (``zenml.logger.get_logger``, a stdlib logger
named after the module). ZenML's root console handler prints them, without level or
time, and its log-storage handler keeps them with the step's logs. The CLI sets ZenML's
verbosity to WARN (``pipelines/env.py``) so that ZenML's own INFO chatter stays off the
console; the loggers made here are set to INFO themselves, so our lines still show.
"""

from __future__ import annotations

import logging

from zenml.logger import get_logger

__all__ = ["progress_logger"]


def progress_logger(name: str) -> logging.Logger:
    """ZenML's logger for module ``name``, emitting INFO whatever ZenML's verbosity.

    Args:
        name: the module's ``__name__``.

    Returns:
        The logger (level INFO; records propagate to ZenML's root handlers).
    """
    logger = get_logger(name)
    logger.setLevel(logging.INFO)
    return logger
