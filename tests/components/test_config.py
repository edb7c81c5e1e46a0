"""Config loading: presets, overrides, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import ExperimentConfig, load_config
from components.errors import UserError


def test_default_preset_is_cpu_small() -> None:
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.preset == "cpu-small"
    assert cfg.ingest.image_size == cfg.diffae.image_size == 32


def test_paper_preset_is_256px_densenet121() -> None:
    cfg = load_config(preset="paper")
    assert cfg.ingest.image_size == 256
    assert cfg.teacher.arch == "densenet121"
    assert cfg.teacher.folds_to_train == 5


def test_user_file_overrides_preset(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("preset: cpu-small\ndiffae:\n  max_steps: 7\n")
    cfg = load_config(p)
    assert cfg.diffae.max_steps == 7
    assert cfg.diffae.batch_size == load_config().diffae.batch_size


def test_typo_is_one_line_error_naming_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("diffae:\n  lerning_rate: 0.1\n")
    with pytest.raises(UserError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "diffae.lerning_rate" in msg and "unknown key" in msg and str(p) in msg


def test_bad_value_and_size_mismatch(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("ingest:\n  slice_levels: [0.1, 0.2]\n")
    with pytest.raises(UserError, match="ingest.slice_levels"):
        load_config(p)
    p.write_text("diffae:\n  image_size: 64\n")
    with pytest.raises(UserError, match="must equal ingest.image_size"):
        load_config(p)


def test_unknown_preset_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown preset 'nope'"):
        load_config(preset="nope")
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
