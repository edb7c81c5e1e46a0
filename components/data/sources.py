"""Where a cohort's files come from: a local folder or an ``s3://bucket/prefix``.

A :class:`Source` lists every file below its root as POSIX paths relative to that root and
reads one file's bytes. Both kinds are picklable (the S3 client is created lazily in each
process), so ingestion workers receive the source itself and read their own patient's files.

S3 endpoint: ``cfg.s3_endpoint_url`` if set, else boto3's standard ``AWS_ENDPOINT_URL``
environment variable, else AWS. Credentials come from the environment as boto3 finds them.
The ``AWS_*`` environment of the process that opened the source travels with it to the
ingestion workers (never to any output). Connect / read timeouts are short and retries few, so an unreachable endpoint is a one-line
:class:`~components.errors.UserError` within seconds rather than a hang.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol

from components.errors import UserError

__all__ = ["Source", "LocalSource", "S3Source", "open_source", "read_head", "read_range"]

_SCRATCH = threading.local()  # LocalSource.read_range's reusable buffer, one per thread


class Source(Protocol):
    """A read-only tree of files."""

    description: str

    def list_files(self) -> list[str]:
        """All files below the root, as sorted POSIX paths relative to it."""
        ...

    def read(self, rel: str) -> bytes:
        """The bytes of one file named by its relative path."""
        ...


class LocalSource:
    """A folder on the local file system.

    Args:
        root: the cohort folder (must exist).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"source {root}: no such folder")
        self.description = str(self.root.resolve())
        self._prefix = os.path.join(str(self.root), "")  # str joins: cheaper than Path per file

    def list_files(self) -> list[str]:
        out: list[str] = []
        stack = [""]
        while stack:  # scandir: file types come with the listing, no stat per file
            rel_dir = stack.pop()
            with os.scandir(self._prefix + rel_dir) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        continue
                    if entry.is_dir():
                        stack.append(f"{rel_dir}{entry.name}/")
                    elif entry.is_file():
                        out.append(rel_dir + entry.name)
        return sorted(out)

    def read(self, rel: str) -> bytes:
        with open(self._prefix + rel, "rb") as fh:
            return fh.read()

    def read_range(self, rel: str, offset: int, n: int) -> memoryview:
        """``n`` bytes of a file from ``offset`` (fewer at its end) in a buffer that this
        thread reuses: valid until its next ``read_range`` call (copy what you keep)."""
        buf = getattr(_SCRATCH, "buf", None)
        if buf is None or len(buf) < n:
            buf = _SCRATCH.buf = bytearray(n)
        view = memoryview(buf)[:n]
        with open(self._prefix + rel, "rb", buffering=0) as fh:
            fh.seek(offset)
            got = 0
            while got < n:
                k = fh.readinto(view[got:])
                if not k:
                    break
                got += k
        return view[:got]

    def read_head(self, rel: str, n: int) -> tuple[bytes, int]:
        """The first ``n`` bytes of a file (all of it when shorter) and its full size."""
        with open(self._prefix + rel, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return fh.read(n), size


class S3Source:
    """Objects below ``s3://bucket/prefix`` read with boto3.

    Args:
        url: ``s3://bucket`` or ``s3://bucket/prefix``.
        endpoint_url: S3-compatible endpoint; ``None`` uses ``AWS_ENDPOINT_URL`` / AWS.
        connect_timeout: seconds to wait for a TCP connection.
        retries: total attempts per request.
    """

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        connect_timeout: float = 3.0,
        retries: int = 2,
    ) -> None:
        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UserError(f"source {url}: missing bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.connect_timeout = connect_timeout
        self.retries = retries
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        self.description = f"s3://{bucket}/{self.prefix}{where}"
        self._client: Any = None
        # Worker processes may have been started (forkserver) before the caller set its
        # AWS_* variables: carry them, and apply them where the client is created.
        self._env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            for key, value in self._env.items():
                os.environ[key] = value
            cfg = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=30,
                retries={"max_attempts": self.retries, "mode": "standard"},
            )
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url, config=cfg)
        return self._client

    def _fail(self, exc: Exception) -> UserError:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        endpoint = self.endpoint_url or "the default AWS endpoint"
        if isinstance(exc, EndpointConnectionError) or "Connect" in type(exc).__name__:
            return UserError(f"source s3://{self.bucket}/{self.prefix}: cannot reach S3 endpoint {endpoint}")
        if isinstance(exc, NoCredentialsError):
            return UserError(f"source s3://{self.bucket}: no S3 credentials in the environment")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "error")
            return UserError(f"source s3://{self.bucket}/{self.prefix}: {code} from {endpoint}")
        return UserError(f"source s3://{self.bucket}/{self.prefix}: {type(exc).__name__} from {endpoint}")

    def list_files(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}/" if self.prefix else ""
        out: list[str] = []
        try:
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if not key.endswith("/"):
                        out.append(key[len(base) :])
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None
        return sorted(out)

    def read(self, rel: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}/{rel}" if self.prefix else rel
        try:
            return self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None


def read_range(source: Source, rel: str, offset: int, n: int) -> bytes | memoryview:
    """``n`` bytes of a file from ``offset`` (fewer at its end). Local files are read into a
    per-thread buffer that the next call reuses (no fresh allocation per image); other
    sources return the slice of the whole object."""
    ranged = getattr(source, "read_range", None)
    if ranged is not None:
        return ranged(rel, offset, n)
    return source.read(rel)[offset : offset + n]


def read_head(source: Source, rel: str, n: int) -> tuple[bytes, int]:
    """First ``n`` bytes of a file and its size; sources without ``read_head`` (S3, where
    one request per object is cheaper than two) return the whole file."""
    head = getattr(source, "read_head", None)
    if head is not None:
        return head(rel, n)
    data = source.read(rel)
    return data, len(data)


def open_source(source: str, s3_endpoint_url: str | None = None) -> LocalSource | S3Source:
    """A :class:`Source` for a folder path or an ``s3://`` URL.

    Args:
        source: local folder or ``s3://bucket/prefix``.
        s3_endpoint_url: endpoint override for S3 (``IngestConfig.s3_endpoint_url``).

    Raises:
        UserError: missing folder or malformed URL.
    """
    if source.startswith("s3://"):
        return S3Source(source, endpoint_url=s3_endpoint_url)
    return LocalSource(source)
