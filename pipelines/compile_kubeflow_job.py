"""Child process of :func:`pipelines.compile.compile_kubeflow` (reads its job as JSON on stdin).

Runs on the throw-away ZenML store named by ``ZENML_CONFIG_PATH``: registers the
``diffexplainer_kubeflow`` flavor and a stack (that orchestrator, a container registry, the
local artifact store), activates it and runs the training pipeline with the Kubeflow settings
in compile-only mode: ZenML builds the snapshot, the orchestrator compiles it with kfp's
compiler and writes ``OUT/training.yaml`` instead of uploading it. With ``cron`` the run goes
through ZenML's schedule API (``pipelines.schedule.submit_scheduled``) and the recurring run the
orchestrator would create is written to ``OUT/training.schedule.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pipelines.env import configure_local_state


def main() -> None:
    job = json.loads(sys.stdin.read())
    configure_local_state()
    from zenml.client import Client
    from zenml.enums import StackComponentType as T

    from pipelines.k8s import load_k8s_settings
    from pipelines.kubeflow import apply_kubeflow_settings
    from pipelines.kubeflow_orchestrator import COMPILE_ONLY_ENV, FLAVOR
    from pipelines.training import training_pipeline

    settings = load_k8s_settings(job["k8s_settings"])
    image = settings.docker.parent_image if settings.docker else ""
    client = Client()
    client.create_flavor(source="pipelines.kubeflow_orchestrator.DiffExplainerKubeflowFlavor",
                         component_type=T.ORCHESTRATOR)
    client.create_stack_component(name="kfp", flavor=FLAVOR, component_type=T.ORCHESTRATOR, configuration={
        "kubeflow_hostname": "https://kubeflow.invalid/pipeline", "kubeflow_namespace": "kubeflow",
        "compile_only": True})  # type: ignore[dict-item]  # annotated Dict[str, str]; the flavor config validates it
    client.create_stack_component(name="registry", flavor="default", component_type=T.CONTAINER_REGISTRY,
                                  configuration={"uri": image.rsplit(":", 1)[0] or "registry.invalid/diffexplainer"})
    client.create_stack(name="kfp-compile", components={T.ORCHESTRATOR: "kfp", T.ARTIFACT_STORE: "default",
                                                        T.CONTAINER_REGISTRY: "registry"})
    client.activate_stack("kfp-compile")
    os.environ[COMPILE_ONLY_ENV] = job["out"]
    pipe = apply_kubeflow_settings(training_pipeline, job["k8s_settings"])
    if job.get("cron"):
        from pipelines.schedule import submit_scheduled

        submit_scheduled(pipe, job["cron"], job["config"], job["inputs"])
        schedules = [{"name": s.name, "cron_expression": s.cron_expression} for s in client.list_schedules()]
        path = Path(job["out"]) / "training.schedule.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "zenml_schedules": schedules}, indent=2))
    else:
        pipe(config=job["config"], **job["inputs"])


if __name__ == "__main__":
    main()
