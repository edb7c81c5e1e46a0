"""Cheap change detector for a cohort source, used as the ingest step's cache key."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

__all__ = ["source_fingerprint"]


def source_fingerprint(source: str, labels: str | None = None) -> str:
    """sha256 over (relative path, size, mtime) of every file under a local source and labels.

    An ``s3://`` source gets a fresh random token: its objects are not listed here, so the
    ingest step always re-runs (and downstream steps are still cached on the dataset hash).

    Args:
        source: a local folder or ``s3://bucket/prefix``.
        labels: the labels CSV path, included in the fingerprint when given.

    Returns:
        ``"sha256:<hex>"`` or ``"uncached:<uuid>"``.
    """
    if source.startswith("s3://"):
        return f"uncached:{uuid.uuid4().hex}"
    h = hashlib.sha256()
    root = Path(source)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if labels is not None and Path(labels).is_file():
        h.update(Path(labels).read_bytes())
    return "sha256:" + h.hexdigest()
