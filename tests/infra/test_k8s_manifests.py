"""infra/k8s: every manifest and every rendered overlay validates strictly (pinned schemas)."""

from __future__ import annotations

import re

import pytest
import yaml
from infra_common import K8S, KUBECTL, OVERLAYS, ROOT, by_kind, kubectl_render, render, validate
from infra_kustomize import build, load_docs

BASE_FILES = sorted(p for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml")


def _base_resources() -> list[str]:
    return yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]


@pytest.mark.parametrize("path", BASE_FILES, ids=lambda p: p.name)
def test_base_manifest_validates(path):
    docs = load_docs(path)
    assert docs, path
    for doc in docs:
        validate(doc)


def test_base_kustomization_lists_every_file():
    assert sorted(_base_resources()) == sorted(p.name for p in BASE_FILES)


@pytest.mark.parametrize("directory", ["base", *[f"overlays/{o}" for o in OVERLAYS]])
def test_rendered_kustomization_validates(directory):
    objs = render(K8S / directory)
    assert len(objs) >= 12
    for obj in objs:
        validate(obj)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed: only the pure-Python render is checked")
@pytest.mark.parametrize("directory", ["base", *[f"overlays/{o}" for o in OVERLAYS]])
def test_python_render_matches_kubectl(directory):
    def index(objs):
        return {(o["kind"], o["metadata"]["name"]): o for o in objs}

    ours, theirs = index(build(K8S / directory)), index(kubectl_render(str(K8S / directory)))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("overlay,namespace", [("dev", "diffexplainer-dev"), ("prod", "diffexplainer-prod")])
def test_overlay_namespace_everywhere(overlay, namespace):
    objs = render(K8S / "overlays" / overlay)
    assert [o["metadata"]["name"] for o in by_kind(objs, "Namespace")] == [namespace]
    for o in objs:
        if o["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert o["metadata"]["namespace"] == namespace, (o["kind"], o["metadata"]["name"])
        assert o["metadata"]["labels"]["diffexplainer.io/environment"] == overlay
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in by_kind(objs, kind):
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": "diffexplainer-pipeline", "namespace": namespace}]


def _rules(objs):
    role = by_kind(objs, "Role", "diffexplainer-orchestrator")[0]
    return {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def test_rbac_covers_the_kubernetes_orchestrator():
    rules = _rules(render(K8S / "overlays" / "prod"))
    assert {"create", "get", "list", "watch", "delete"} <= rules[("", "pods")]
    assert "get" in rules[("", "pods/log")]
    assert {"create", "get", "list", "delete", "patch"} <= rules[("batch", "jobs")]
    assert {"create", "get", "list", "delete", "patch"} <= rules[("batch", "cronjobs")]
    assert {"create", "get", "delete"} <= rules[("", "secrets")]
    assert all("*" not in verbs for verbs in rules.values())


def test_overlays_differ_in_replicas_resources_and_gpu_quota():
    dev, prod = (render(K8S / "overlays" / o) for o in OVERLAYS)

    def mlflow(objs):
        return by_kind(objs, "Deployment", "mlflow")[0]["spec"]

    assert mlflow(dev)["replicas"] == 1 and mlflow(prod)["replicas"] == 2
    res = [mlflow(x)["template"]["spec"]["containers"][0]["resources"] for x in (dev, prod)]
    assert res[0] != res[1] and res[1]["limits"]["memory"] == "4Gi"

    def quota(objs):
        return int(by_kind(objs, "ResourceQuota", "diffexplainer-gpu")[0]["spec"]["hard"]["requests.nvidia.com/gpu"])

    assert (quota(dev), quota(prod)) == (1, 4)
    tpl = by_kind(prod, "PodTemplate", "diffexplainer-gpu-step")[0]["template"]["spec"]["containers"][0]
    assert tpl["image"] == "registry.example.internal/diffexplainer:0.1.0"


def test_mlflow_reads_its_backend_and_credentials_from_secrets():
    dep = by_kind(render(K8S / "overlays" / "prod"), "Deployment", "mlflow")[0]
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "diffexplainer-mlflow-db"
    assert {"secretRef": {"name": "diffexplainer-s3"}} in pod["containers"][0]["envFrom"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["nodeSelector"] == {"diffexplainer.io/node-pool": "cpu"}
    svc = by_kind(render(K8S / "overlays" / "prod"), "Service", "mlflow")[0]
    assert svc["spec"]["ports"][0]["port"] == 5000


def test_zenml_server_is_referenced_per_overlay():
    names = {o: by_kind(render(K8S / "overlays" / o), "Service", "zenml-server")[0]["spec"]["externalName"]
             for o in OVERLAYS}
    assert names["dev"] != names["prod"]


SECRETISH = re.compile(r"(AKIA[0-9A-Z]{16}|-----BEGIN|password\s*[:=]\s*(?!\{\{)[^\s\"'{$]+|postgres(ql)?://[^\s\"']*:[^\s\"'@]*@)", re.I)


def test_no_secret_objects_or_literal_credentials():
    for overlay in OVERLAYS:
        assert not by_kind(render(K8S / "overlays" / overlay), "Secret")
    # A ZenML secret reference ({{name.key}}) or a variable is fine; a value is not.
    for path in [*(ROOT / "infra").rglob("*"), *(ROOT / "configs").glob("k8s-*.yaml"), ROOT / ".dockerignore"]:
        if path.is_file():
            assert not SECRETISH.search(path.read_text()), path
