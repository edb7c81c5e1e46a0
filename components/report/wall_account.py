"""Where a run's wall time went: stage timers, step overhead and the time between steps.

The pipeline's steps time their own work (``timings_s``: ingest, diffae, teacher, agent,
reconstruction_gate, counterfactual). A whole run also spends time no stage sees: the CLI's
imports, writing the synthetic cohorts, the orchestrator's start-up before the first step,
each step's own set-up around its timed stage (artifact loading and saving, tracking runs,
report rendering), steps without a stage timer (latents, registration), the gaps between
steps and the finish after the last one. :func:`wall_account` splits the wall time into
those measured windows so that the report can say where every second went.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["STEP_STAGES", "stage_of", "wall_account"]

#: step-name prefix -> the stage key its in-step timer reports under
STEP_STAGES = {
    "ingest": "ingest",
    "train_diffae": "diffae",
    "train_teacher": "teacher",
    "distill_agent": "agent",
    "reconstruction_gate": "reconstruction_gate",
    "evaluate_counterfactuals": "counterfactual",
}


def stage_of(step_name: str) -> str | None:
    """The stage key of a pipeline step (``ingest_osic`` -> ``ingest``), None if it has none."""
    for prefix, stage in STEP_STAGES.items():
        if step_name.startswith(prefix):
            return stage
    return None


def wall_account(
    stages_s: Mapping[str, float | None],
    step_windows: Mapping[str, tuple[float, float]],
    run_start: float,
    pipeline_call: tuple[float, float],
    run_end: float,
    synthesis_s: float = 0.0,
) -> dict[str, float]:
    """Split a run's wall time into named, measured windows.

    Args:
        stages_s: in-step stage timers (seconds), e.g. the report's ``timings_s``; keys that
            are not stages (``total``) are ignored.
        step_windows: step name -> ``(start, end)`` epoch seconds, as the orchestrator recorded
            them (steps run one after another).
        run_start: epoch seconds when the process started.
        pipeline_call: epoch seconds when the pipeline was called and when it returned.
        run_end: epoch seconds at the end of the run.
        synthesis_s: seconds spent writing synthetic cohorts before the pipeline.

    Returns:
        seconds per window: every stage of ``stages_s`` that has a step, ``step_overhead``
        (steps' wall minus their stage timers), ``untimed_steps`` (steps with no stage
        timer), ``cli_startup`` (process start to the pipeline call, minus synthesis),
        ``synthesis``, ``pipeline_startup`` (call to first step), ``between_steps``,
        ``pipeline_finish`` (last step to the call's return, including output loading),
        ``after_pipeline``; then ``wall``, ``unaccounted`` (wall minus all windows) and
        ``accounted_share``. Timer windows that overlap (a stage timer longer than its
        step) count once: the overhead is clipped at 0.
    """
    windows = sorted(step_windows.items(), key=lambda kv: kv[1][0])
    stage_totals: dict[str, float] = {}
    step_wall: dict[str, float] = {}
    for name, (start, end) in windows:
        stage = stage_of(name)
        key = stage if stage is not None else "untimed_steps"
        step_wall[key] = step_wall.get(key, 0.0) + max(0.0, end - start)
    out: dict[str, float] = {}
    for stage, wall in step_wall.items():
        if stage == "untimed_steps":
            continue
        timer = stages_s.get(stage)
        stage_totals[stage] = min(float(timer), wall) if timer is not None else 0.0
        out[stage] = stage_totals[stage]
    out["step_overhead"] = sum(step_wall[s] - stage_totals[s] for s in stage_totals)
    out["untimed_steps"] = step_wall.get("untimed_steps", 0.0)
    call_start, call_end = pipeline_call
    out["synthesis"] = float(synthesis_s)
    out["cli_startup"] = max(0.0, call_start - run_start - synthesis_s)
    if windows:
        first, last = windows[0][1][0], max(end for _, (_, end) in windows)
        out["pipeline_startup"] = max(0.0, first - call_start)
        busy = sum(max(0.0, e - s) for _, (s, e) in windows)
        out["between_steps"] = max(0.0, (last - first) - busy)
        out["pipeline_finish"] = max(0.0, call_end - last)
    else:
        out["pipeline_startup"] = out["between_steps"] = 0.0
        out["pipeline_finish"] = max(0.0, call_end - call_start)
    out["after_pipeline"] = max(0.0, run_end - call_end)
    wall = max(0.0, run_end - run_start)
    parts = sum(out.values())
    out["wall"] = wall
    out["unaccounted"] = wall - parts
    out["accounted_share"] = parts / wall if wall > 0 else 0.0
    return {k: round(v, 3) for k, v in out.items()}
