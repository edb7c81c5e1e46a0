"""Config loading: presets, overrides, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import CounterfactualConfig, ExperimentConfig, load_config, preset_path
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


@pytest.mark.parametrize("preset", ["cpu-small", "paper"])
def test_counterfactual_ddim_steps_inherit_the_diffae_count(preset: str) -> None:
    raw = yaml.safe_load(preset_path(preset).read_text())
    assert "ddim_steps" not in (raw.get("counterfactual") or {}), "one source: diffae.ddim_steps"
    cfg = load_config(preset=preset)
    assert cfg.counterfactual.ddim_steps == cfg.counterfactual.ddim_step_count == cfg.diffae.ddim_steps


def test_counterfactual_ddim_steps_override_is_kept(tmp_path: Path) -> None:
    cfg = load_config(overrides={"diffae": {"ddim_steps": 7}})
    assert cfg.counterfactual.ddim_step_count == 7
    cfg = load_config(overrides={"diffae": {"ddim_steps": 7}, "counterfactual": {"ddim_steps": 3}})
    assert (cfg.diffae.ddim_steps, cfg.counterfactual.ddim_step_count) == (7, 3)
    again = ExperimentConfig.model_validate(cfg.model_dump(mode="json"))  # as steps rebuild it
    assert again.counterfactual.ddim_step_count == 3
    with pytest.raises(UserError, match="counterfactual.ddim_steps"):
        load_config(overrides={"counterfactual": {"ddim_steps": 0}})
    with pytest.raises(ValueError, match="unset"):
        _ = CounterfactualConfig().ddim_step_count  # stand-alone: nothing to inherit from


def test_gpu_64_preset_is_cpu_small_at_64_px() -> None:
    gpu, cpu = load_config(preset="gpu-64"), load_config(preset="cpu-small")
    assert gpu.preset == "gpu-64" and gpu.ingest.image_size == gpu.diffae.image_size == 64
    assert gpu.diffae.base_channels == 64 and gpu.diffae.max_minutes == 3.0
    # everything it does not name is cpu-small's (cohorts, black boxes, gates)
    assert gpu.synth == cpu.synth and gpu.teacher == cpu.teacher and gpu.gates == cpu.gates
    assert gpu.model_dump(exclude={"preset"}) == load_config(preset_path("gpu-64")).model_dump(exclude={"preset"})


def test_presets_naming_each_other_in_a_cycle_fail_in_one_line(tmp_path: Path, monkeypatch) -> None:
    import components.config as config_module

    (tmp_path / "a.yaml").write_text("preset: b\n")
    (tmp_path / "b.yaml").write_text("preset: a\n")
    (tmp_path / "self.yaml").write_text("preset: self\n")
    (tmp_path / "orphan.yaml").write_text("preset: nowhere\n")
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path)
    with pytest.raises(UserError, match="cycle"):
        load_config(preset="a")
    with pytest.raises(UserError, match="cycle"):
        load_config(preset="self")
    with pytest.raises(UserError, match=r"orphan\.yaml: preset: unknown preset 'nowhere'"):
        load_config(preset="orphan")
