"""What a step logs to MLflow: flattened params, finite numeric metrics."""

from __future__ import annotations

import math

import mlflow

from steps.tracking import numeric_metrics, step_run


def test_numeric_metrics_keeps_finite_numbers_only() -> None:
    doc = {"counterfactual": {"flip_rate": 0.5, "n_cases": 3, "passed": True, "note": "x", "alphas": [0.2],
                              "search": {"mean_alpha": None, "capped_rate": 1.0}, "nan": math.nan, "inf": math.inf},
           "localization": {"saliency": {"auroc": 0.75}}}
    assert numeric_metrics(doc) == {"counterfactual_flip_rate": 0.5, "counterfactual_n_cases": 3.0,
                                    "counterfactual_search_capped_rate": 1.0, "localization_saliency_auroc": 0.75}


def test_step_run_logs_nested_params_flattened() -> None:
    with step_run("tracking-test", "params", params={"diffae": {"lr": 0.001, "mults": [1, 2]}, "seed": 0}) as run:
        pass
    params = mlflow.get_run(run.info.run_id).data.params
    assert params == {"diffae.lr": "0.001", "diffae.mults": "[1, 2]", "seed": "0"}
