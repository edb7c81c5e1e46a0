"""User-facing error type.

Every error a user can cause (bad config, bad input data, unreachable storage, a
classifier that breaks the contract) is raised as :class:`UserError` with a one-line
message naming the file or field. The CLI prints ``error: <message>`` to stderr and exits
with status 2; nothing else in the code base catches it.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem with the user's input, stated in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
