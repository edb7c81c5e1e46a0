"""Ingestion from s3:// against a real S3-compatible server on loopback (moto)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest
from dicom_factory import chest_volume, small_cfg, write_labels, write_series
from moto.server import ThreadedMotoServer

from components.data.ingest import ingest
from components.errors import UserError


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_ingest_from_s3_matches_local(tmp_path: Path, s3_endpoint: str, aws_env: None, monkeypatch) -> None:
    src = tmp_path / "src"
    for i in range(3):
        write_series(src / "train" / f"S{i}", chest_volume(10, seed=i))
    (src / "train" / "S0" / "readme.txt").write_text("x")
    labels = write_labels(tmp_path / "labels.csv", {"S0": 0, "S1": 1, "S2": 1})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="cohorts")
    for p in src.rglob("*"):
        if p.is_file():
            s3.upload_file(str(p), "cohorts", f"osic/v1/{p.relative_to(src).as_posix()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # boto3's standard variable
    remote = ingest("s3://cohorts/osic/v1", labels, tmp_path / "out-s3", small_cfg(workers=2))
    local = ingest(str(src), labels, tmp_path / "out-local", small_cfg(workers=1))
    assert remote.n_ok == 3 and remote.dataset_hash == local.dataset_hash
    files = pd.read_csv(tmp_path / "out-s3" / "files.csv")
    assert sorted(files.path) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert remote.summary["source"] == f"s3://cohorts/osic/v1 at {s3_endpoint}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_one_line_user_error(tmp_path: Path, aws_env: None) -> None:
    labels = write_labels(tmp_path / "labels.csv", {"A": 0})
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        ingest("s3://cohorts/x", labels, tmp_path / "out", small_cfg(s3_endpoint_url=endpoint))
    assert time.monotonic() - start < 15
    assert str(err.value) == f"source s3://cohorts/x: cannot reach S3 endpoint {endpoint}"


def test_missing_bucket(tmp_path: Path, s3_endpoint: str, aws_env: None) -> None:
    labels = write_labels(tmp_path / "labels.csv", {"A": 0})
    with pytest.raises(UserError, match="NoSuchBucket"):
        ingest("s3://nobucket/x", labels, tmp_path / "out", small_cfg(s3_endpoint_url=s3_endpoint))
