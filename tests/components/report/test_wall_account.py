"""The demo's wall-time account: every window measured, nothing counted twice."""

from __future__ import annotations

import pytest

from components.report.wall_account import stage_of, wall_account


def test_step_names_map_to_their_stage_timers() -> None:
    assert stage_of("ingest_osic") == stage_of("ingest_external") == "ingest"
    assert stage_of("evaluate_counterfactuals_step") == "counterfactual"
    assert stage_of("encode_latents_step") is None and stage_of("register_models_step") is None


def test_windows_add_up_to_the_wall_time() -> None:
    # process starts at 0; synthesis 0-20, call at 30; steps 40-50, 52-152, 160-170 (untimed); return 175; end 180
    windows = {"ingest_osic": (40.0, 50.0), "train_diffae_step": (52.0, 152.0), "register_models_step": (160.0, 170.0)}
    acc = wall_account({"ingest": 8.0, "diffae": 97.0, "teacher": 5.0, "total": 110.0}, windows, 0.0,
                       (30.0, 175.0), 180.0, synthesis_s=20.0)
    assert acc["ingest"] == 8.0 and acc["diffae"] == 97.0 and "teacher" not in acc  # no teacher step ran
    assert acc["step_overhead"] == pytest.approx(2.0 + 3.0)
    assert acc["untimed_steps"] == 10.0
    assert acc["synthesis"] == 20.0 and acc["cli_startup"] == 10.0
    assert acc["pipeline_startup"] == 10.0 and acc["between_steps"] == pytest.approx(2.0 + 8.0)
    assert acc["pipeline_finish"] == 5.0 and acc["after_pipeline"] == 5.0
    assert acc["wall"] == 180.0 and acc["unaccounted"] == pytest.approx(0.0) and acc["accounted_share"] == 1.0


def test_a_cached_step_does_not_count_its_old_timer() -> None:
    # a cache hit: the step took 0.5 s but its output carries the original 600 s timer
    acc = wall_account({"diffae": 600.0}, {"train_diffae_step": (10.0, 10.5)}, 0.0, (5.0, 12.0), 12.0)
    assert acc["diffae"] == 0.5 and acc["step_overhead"] == 0.0
    assert acc["unaccounted"] == pytest.approx(0.0)
