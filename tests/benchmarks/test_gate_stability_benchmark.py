"""benchmarks/gate_stability.py on a tiny synthetic workdir: the JSON line has the issue's keys."""

from __future__ import annotations

import json


def test_benchmark_prints_the_issue_keys(tiny_workdir, load_benchmark, capsys, monkeypatch) -> None:
    wd, cfg_path = tiny_workdir
    bench = load_benchmark("gate_stability")
    monkeypatch.setattr("sys.argv", ["gate_stability.py", "--workdir", str(wd), "--config", str(cfg_path),
                                     "--seeds", "2", "--cf-seeds", "2", "--threads", "1"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["seeds"] == 2 and result["cf_seeds"] == 2
    runs = {"reconstruction": 2, "agent": 2, "counterfactual": 2}
    for gate, n in runs.items():
        g = result["gates"][gate]
        assert g["runs"] == n and 0.0 <= g["pass_rate"] <= 1.0 and g["agreement"] == max(g["pass_rate"], 1 - g["pass_rate"])
    # no early checkpoint in this workdir: the control is the DiffAE with perturbed weights
    assert set(result["negative_controls"]) == {"shuffled_teacher_agent", "negated_agent", "perturbed_diffae"}
    assert all(c["runs"] == 2 and 0 <= c["passed"] <= 2 for c in result["negative_controls"].values())
    seed0 = result["per_seed"][0]
    assert seed0["gate_cases"]["external"] == 8 and set(seed0["gates"]) == set(runs)
    assert seed0["gate_cases"]["holdout"] > 0 and seed0["gate_cases"]["crossfit"] > 0  # 3 folds: 2 cross-fitted
    assert "agent_without_crossfit" in seed0 and result["agent_gate_pass_rate_without_crossfit"] is not None
    # seed 1 challenges seed 0 on the same external + held-out cases
    assert "agent_vs_seed0" not in seed0 and result["agent_noninferiority_vs_seed0"]["runs"] == 1
    vs = result["per_seed"][1]["agent_vs_seed0"]
    # different teachers: the changed-black-box margins (cpu-small), the base margins counted beside them
    assert set(vs) == {"auc", "f1"} and vs["auc"]["threshold"] == -0.04 and vs["f1"]["threshold"] == -0.19
    assert result["margins"]["base"]["auc"] == 0.02 and result["margins"]["changed_blackbox"]["auc"] == 0.04
    assert result["per_seed"][1]["agent_vs_seed0_passed"] == all(
        v["lower"] is not None and v["lower"] >= v["threshold"] for v in vs.values())
    assert result["agent_noninferiority_vs_seed0_base_margins"]["runs"] == 1
    # an agent-only retrain per seed against that seed's agent (same teacher: base margins)
    assert result["agent_only_retrain_noninferiority"]["runs"] == 2
    own = result["per_seed"][0]["agent_only_retrain_vs_own"]
    assert set(own) == {"auc", "f1"} and own["auc"]["threshold"] == -0.02
    # the degraded controls are scored, and their noise really lowered the agent's AUC
    ctl = result["degraded_challenger_controls"]
    assert ctl["vs_champion"]["runs"] == 1 and ctl["vs_own_agent"]["runs"] == 2 and ctl["mean_drop"]["auc"] < 0
    # the counterfactual gate's champion comparison: seed 0's agent and black box swept seed 1's cases
    cf_vs = result["per_seed"][1]["counterfactual_vs_seed0"]
    assert "counterfactual_vs_seed0" not in seed0 and result["counterfactual_noninferiority_vs_seed0"]["runs"] == 1
    assert cf_vs["direction_agreement"]["threshold"] == -result["margins"]["changed_blackbox"]["direction_agreement"]
    assert "flip_gain" in cf_vs or "flip_gain" in cf_vs["not_compared"]
    assert result["per_seed"][1]["counterfactual_vs_seed0_passed"] == all(
        v["lower"] is not None and v["lower"] >= v["threshold"] for m, v in cf_vs.items() if m != "not_compared")
    assert result["counterfactual_noninferiority_vs_seed0_base_margins"]["runs"] == 1
    assert ctl["cf_chance_direction_vs_champion"]["runs"] == 1
    chance = result["per_seed"][1]["counterfactual_chance_vs_seed0"]
    assert ctl["cf_chance_direction_vs_champion"]["passed"] == int(all(
        v["lower"] is not None and v["lower"] >= v["threshold"] for m, v in chance.items() if m != "not_compared"))
    for gate in seed0["gates"].values():
        assert gate["passed"] == (not gate["failing"])
