"""A :class:`UserError` raised inside a pipeline step reaches the caller as that UserError.

ZenML runs a step, records its exception on the step run (``exception_info``: the class's
import path, the message and the traceback) and then raises its own
``RuntimeError("Pipeline run has failed due to failure in step(s): ...")``, with no
exception chain back to the step's error; the local orchestrator also logs the step's
traceback to the console. :func:`step_user_errors` wraps a pipeline call: it keeps that
traceback off the console when the step's exception is a UserError (the step run keeps
it), and re-raises the failure as the step's UserError when every failed step of the run
failed with one, so the CLI prints its one ``error:`` line and exits 2. Any other failure
(a bug) propagates unchanged, with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from components.errors import UserError

__all__ = ["step_user_errors", "failed_step_user_error"]


class _QuietUserErrors(logging.Filter):
    """Console-handler filter: a record carrying a UserError is printed without its traceback."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and isinstance(record.exc_info[1], UserError)):
            return True
        # a copy without the traceback, so that the other handlers (ZenML's log store) keep it
        self.handler.handle(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
        return False


def failed_step_user_error(pipeline_name: str, since: datetime) -> UserError | None:
    """The UserError of the latest failed run of ``pipeline_name`` created at or after ``since``
    (UTC), when all its failed steps raised one; else None."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.utils.exception_utils import reconstruct_exception

    runs = Client().list_pipeline_runs(pipeline=pipeline_name, sort_by="desc:created", size=1, hydrate=True)
    if not runs.items:
        return None
    run = runs.items[0]
    created = run.created if run.created.tzinfo else run.created.replace(tzinfo=UTC)
    if created < since or run.status != ExecutionStatus.FAILED:
        return None
    errors = [reconstruct_exception(s.exception_info, "step failed") for s in run.steps.values()
              if s.status == ExecutionStatus.FAILED]
    if errors and all(isinstance(e, UserError) for e in errors):
        return errors[0]  # type: ignore[return-value]
    return None


@contextmanager
def step_user_errors(pipeline: Any) -> Iterator[None]:
    """Run ``pipeline`` (a ZenML pipeline object) inside: a step's UserError comes out as itself.

    Raises:
        UserError: a step of the run raised one (and no step failed otherwise).
    """
    from zenml.logger import ZenMLConsoleHandler

    since = datetime.now(UTC).replace(microsecond=0)  # the store may keep whole seconds
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    filters = [_QuietUserErrors(h) for h in handlers]
    for h, f in zip(handlers, filters, strict=True):
        h.addFilter(f)
    try:
        yield
    except UserError:
        raise
    except Exception:
        name = getattr(pipeline, "name", None)
        try:
            user = failed_step_user_error(name, since) if isinstance(name, str) else None
        except Exception:  # the lookup must never hide the run's own failure
            user = None
        if user is None:
            raise
        raise user from None
    finally:
        for h, f in zip(handlers, filters, strict=True):
            h.removeFilter(f)
