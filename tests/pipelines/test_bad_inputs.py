"""Each CLI command that lacked one gets a bad input: one `error:` line on stderr, exit 2, no traceback;
`train` refuses bad sources and labels before its pipeline starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipelines.training
from pipelines.cli import main


def _cohort(root: Path, labels: str = "Patient,mortality_1y\nID00001,1\n") -> Path:
    (root / "ID00001").mkdir(parents=True)
    (root / "ID00001" / "1.dcm").write_bytes(b"\0" * 132)
    (root / "labels.csv").write_text(labels)
    return root


def _one_error_line(rc: int, capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and out == "", (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_ingest_refuses_a_folder_given_as_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cohort = _cohort(tmp_path / "c")
    rc = main(["ingest", "--source", str(cohort), "--labels", str(cohort), "--out", str(tmp_path / "o")])
    assert "cannot read" in _one_error_line(rc, capsys)
    assert not (tmp_path / "o").exists()


def test_train_teacher_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train-teacher", "--dataset", str(tmp_path), "--out", str(tmp_path / "t.pt")])
    assert "not an ingested dataset" in _one_error_line(rc, capsys)


def test_demo_refuses_an_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["demo", "--preset", "no-such", "--workdir", str(tmp_path / "w")])
    assert "unknown preset 'no-such'" in _one_error_line(rc, capsys)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(("case", "expected"), [
    ("missing_source", "--source: source"),
    ("empty_external", "--external-source: source"),
    ("labels_without_outcome", "--external-labels: labels"),
    ("unreachable_s3", "--source: source s3://cohorts/osic: cannot reach S3 endpoint http://127.0.0.1:9"),
    ("bad_config", "ingest.n_foldz"),
])
def test_train_checks_its_inputs_before_the_pipeline_starts(case: str, expected: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pipeline(**kwargs: object) -> None:
        raise AssertionError("the training pipeline started")

    monkeypatch.setattr(pipelines.training, "training_pipeline", no_pipeline)
    osic, external = _cohort(tmp_path / "osic"), _cohort(tmp_path / "external")
    argv = ["train", "--source", str(osic), "--labels", str(osic / "labels.csv"), "--external-source", str(external),
            "--external-labels", str(external / "labels.csv"), "--workdir", str(tmp_path / "w")]
    if case == "missing_source":
        argv[2] = str(tmp_path / "nowhere")
    elif case == "empty_external":
        (tmp_path / "empty").mkdir()
        argv[6] = str(tmp_path / "empty")
    elif case == "unreachable_s3":  # nothing listens on the discard port: refused at once
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        (tmp_path / "s3.yaml").write_text("ingest:\n  s3_endpoint_url: http://127.0.0.1:9\n")
        argv[2] = "s3://cohorts/osic"
        argv += ["--config", str(tmp_path / "s3.yaml")]
    elif case == "labels_without_outcome":
        (external / "labels.csv").write_text("Patient,outcome\nID00001,1\n")
    else:
        (tmp_path / "c.yaml").write_text("ingest:\n  n_foldz: 3\n")
        argv += ["--config", str(tmp_path / "c.yaml")]
    assert expected in _one_error_line(main(argv), capsys)
