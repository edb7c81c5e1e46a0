"""ZenML's Kubeflow orchestrator with the per-step pod settings of ``configs/k8s-*.yaml`` applied.

ZenML 0.98's ``KubeflowOrchestrator`` compiles each step into a KFP v2 container task with
``kfp.compiler.Compiler`` but, on KFP 2.x, keeps only ``node_selectors`` of the pod settings and
CPU / memory *limits* from ``ResourceSettings`` (it warns that tolerations, volumes, env_from,
... are ignored). This subclass (flavor ``diffexplainer_kubeflow``) applies the step's full
``KubernetesPodSettings`` with ``kfp-kubernetes`` instead: requests and limits, the GPU as the
task's accelerator (``nvidia.com/gpu``), node selectors, tolerations, ``emptyDir`` volumes, pod
labels, the pod security context's user / group / non-root, and Secret / ConfigMap keys as
environment variables (KFP has no ``envFrom``: the keys are listed per object in the settings'
``env_keys``). Anything it cannot express is an error, not a silent drop.

An orchestrator registered with ``compile_only: true`` (``diffexplainer compile`` does so on a
throw-away store) copies the compiled spec to ``$DIFFEXPLAINER_KFP_COMPILE_ONLY/<pipeline>.yaml``
and uploads nothing; it then counts as a local component (no ZenML server, no remote artifact
store needed) and only asks for a container registry in the stack.

Requires the ``kubeflow`` extra (kfp, kfp-kubernetes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, cast

from kfp import dsl
from kfp import kubernetes as kfp_k8s
from pydantic import Field
from zenml.enums import StackComponentType
from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import (
    KubeflowOrchestratorConfig,
    KubeflowOrchestratorFlavor,
    KubeflowOrchestratorSettings,
)
from zenml.integrations.kubeflow.orchestrators.kubeflow_orchestrator import KubeflowOrchestrator
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings
from zenml.stack import StackValidator

__all__ = ["FLAVOR", "COMPILE_ONLY_ENV", "DiffExplainerKubeflowSettings", "DiffExplainerKubeflowConfig",
           "DiffExplainerKubeflowOrchestrator", "DiffExplainerKubeflowFlavor", "apply_pod_settings"]

FLAVOR = "diffexplainer_kubeflow"
COMPILE_ONLY_ENV = "DIFFEXPLAINER_KFP_COMPILE_ONLY"
GPU = "nvidia.com/gpu"


class DiffExplainerKubeflowSettings(KubeflowOrchestratorSettings):
    """Kubeflow settings plus the step's pod settings and the Secret / ConfigMap keys to expose
    as environment variables.

    The pod settings travel as ``pod``, not ``pod_settings``: ZenML 0.98's
    ``KubeflowOrchestratorSettings`` validator replaces any given ``pod_settings`` by one built
    from the legacy ``node_selectors`` / ``node_affinity`` fields (read in its source, and seen:
    a step's GPU profile arrived as an empty ``KubernetesPodSettings``).
    """

    pod: KubernetesPodSettings | None = None
    env_keys: dict[str, list[str]] = Field(
        default_factory=dict, description="Secret or ConfigMap name -> keys (each becomes an env var of that name)")


class DiffExplainerKubeflowConfig(KubeflowOrchestratorConfig, DiffExplainerKubeflowSettings):
    """Kubeflow orchestrator config plus ``compile_only`` (write the spec, submit nothing)."""

    compile_only: bool = False

    @property
    def is_remote(self) -> bool:
        return not self.compile_only

    @property
    def is_local(self) -> bool:
        return self.compile_only


def _quantity(value: Any) -> str:
    return str(value)


def apply_pod_settings(task: dsl.PipelineTask, pod: Any, env_keys: dict[str, list[str]]) -> dsl.PipelineTask:
    """Apply ``KubernetesPodSettings`` to a KFP task (see the module docstring for what maps).

    Raises:
        ValueError: a setting KFP cannot express, or an env_from object without listed keys.
    """
    unsupported = sorted(k for k in ("affinity", "host_ipc", "init_containers", "sidecar_containers",
                                     "container_security_context", "host_volumes") if getattr(pod, k, None))
    if unsupported:
        raise ValueError(f"pod settings {unsupported} have no KFP 2.x equivalent")
    resources = pod.resources or {}
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    for key, setter in (("cpu", task.set_cpu_request), ("memory", task.set_memory_request)):
        if key in requests:
            setter(_quantity(requests[key]))
    for key, setter in (("cpu", task.set_cpu_limit), ("memory", task.set_memory_limit)):
        if key in limits:
            setter(_quantity(limits[key]))
    gpus = limits.get(GPU, requests.get(GPU))
    if gpus is not None and int(gpus) > 0:
        task.set_accelerator_type(GPU).set_accelerator_limit(int(gpus))
    for key, value in (pod.node_selectors or {}).items():
        kfp_k8s.add_node_selector(task, key, value)
    for tol in pod.tolerations or []:
        t = tol if isinstance(tol, dict) else tol.to_dict()
        kfp_k8s.add_toleration(task, key=t.get("key"), operator=t.get("operator", "Equal"), value=t.get("value"),
                               effect=t.get("effect"), toleration_seconds=t.get("tolerationSeconds"))
    mounts = {m["name"]: m["mountPath"] for m in (pod.volume_mounts or [])}
    for vol in pod.volumes or []:
        if "emptyDir" not in vol or vol["name"] not in mounts:
            raise ValueError(f"volume {vol.get('name')!r}: only mounted emptyDir volumes map to KFP")
        ed = vol["emptyDir"] or {}
        kfp_k8s.empty_dir_mount(task, vol["name"], mounts[vol["name"]], medium=ed.get("medium"),
                                size_limit=ed.get("sizeLimit"))
    for src in pod.env_from or []:
        ref, use = ((src["secretRef"], kfp_k8s.use_secret_as_env) if "secretRef" in src
                    else (src.get("configMapRef"), kfp_k8s.use_config_map_as_env))
        if not ref or ref["name"] not in env_keys:
            raise ValueError(f"env_from {src}: list its keys under kubeflow.env_keys (KFP has no envFrom)")
        use(task, ref["name"], {k: k for k in env_keys[ref["name"]]})
    for key, value in (pod.labels or {}).items():
        kfp_k8s.add_pod_label(task, key, value)
    sc = (pod.additional_pod_spec_args or {}).get("security_context") or {}
    if sc:
        kfp_k8s.set_security_context(task, run_as_user=sc.get("runAsUser"), run_as_group=sc.get("runAsGroup"),
                                     run_as_non_root=sc.get("runAsNonRoot"))
    return task


class DiffExplainerKubeflowOrchestrator(KubeflowOrchestrator):
    """``KubeflowOrchestrator`` with full per-step pod settings and a compile-only mode."""

    _snapshot: Any = None

    @property
    def settings_class(self) -> type[DiffExplainerKubeflowSettings]:
        return DiffExplainerKubeflowSettings

    @property
    def validator(self) -> StackValidator | None:
        if cast(DiffExplainerKubeflowConfig, self.config).compile_only:
            return StackValidator(required_components={StackComponentType.CONTAINER_REGISTRY})
        return super().validator

    def submit_pipeline(self, snapshot: Any, stack: Any, base_environment: dict, step_environments: dict,
                        placeholder_run: Any = None) -> Any:
        self._snapshot = snapshot  # read by _configure_container_resources (called per step task)
        return super().submit_pipeline(snapshot, stack, base_environment, step_environments, placeholder_run)

    def _configure_container_resources(self, dynamic_component: dsl.PipelineTask, resource_settings: Any,
                                       node_selector_constraint: Any = None) -> dsl.PipelineTask:
        # kfp names the component after the step, sanitised (``train_diffae_step`` -> ``train-diffae-step``)
        by_kfp_name = {re.sub(r"[^-0-9a-z]+", "-", name.lower()): name for name in self._snapshot.step_configurations}
        step = self._snapshot.step_configurations[by_kfp_name[dynamic_component.component_spec.name]]
        settings = cast(DiffExplainerKubeflowSettings, self.get_settings(step))
        if settings.pod is None:
            return super()._configure_container_resources(dynamic_component, resource_settings, None)
        return apply_pod_settings(dynamic_component, settings.pod, settings.env_keys)

    def _upload_and_run_pipeline(self, snapshot: Any, pipeline_file_path: str, run_name: str) -> Any:
        if cast(DiffExplainerKubeflowConfig, self.config).compile_only:
            out = os.environ.get(COMPILE_ONLY_ENV, ".")
            name = snapshot.pipeline_configuration.name
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pipeline_file_path, Path(out) / f"{name}.yaml")
            if snapshot.schedule:  # what super() hands to kfp's Client.create_recurring_run
                sch = snapshot.schedule
                run = {"experiment": name, "job_name": run_name, "cron_expression": sch.cron_expression,
                       "start_time": str(sch.utc_start_time) if sch.utc_start_time else None,
                       "end_time": str(sch.utc_end_time) if sch.utc_end_time else None,
                       "interval_second": sch.interval_second.seconds if sch.interval_second else None,
                       "no_catchup": not sch.catchup, "enable_caching": False,
                       "namespace": cast(DiffExplainerKubeflowSettings, self.get_settings(snapshot)).user_namespace}
                (Path(out) / f"{name}.schedule.json").write_text(json.dumps({"recurring_run": run}, indent=2))
            return None
        return super()._upload_and_run_pipeline(snapshot, pipeline_file_path, run_name)


class DiffExplainerKubeflowFlavor(KubeflowOrchestratorFlavor):
    """Flavor ``diffexplainer_kubeflow``: register with
    ``zenml orchestrator flavor register pipelines.kubeflow_orchestrator.DiffExplainerKubeflowFlavor``."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[KubeflowOrchestratorConfig]:
        return DiffExplainerKubeflowConfig

    @property
    def implementation_class(self) -> type[DiffExplainerKubeflowOrchestrator]:
        return DiffExplainerKubeflowOrchestrator
