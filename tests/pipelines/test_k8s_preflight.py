"""`diffexplainer k8s preflight` against a loopback HTTP server that imitates the Kubernetes API.

No cluster is reachable here: a ``http.server`` on 127.0.0.1 answers the endpoints the official
client calls (version, namespace, service account, Secrets, ConfigMaps, SelfSubjectAccessReview,
nodes) with Kubernetes-shaped JSON, plus MLflow's ``/health`` and an S3 ``HEAD /bucket``. Two
personalities: a healthy cluster and a broken one; the access reviews are allowed unless their
(resource, verb) is in ``Cluster.denied``, and each is recorded in ``Cluster.reviews``. The client reaches them through a kubeconfig
written to ``tmp_path`` (contexts ``healthy``, ``broken``, ``down``), with the shipped
``configs/k8s-prod.yaml`` and its ``${...}`` variables pointed at the server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from pipelines.cli import main
from pipelines.k8s_preflight import RBAC_RULES, check_rbac

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "configs" / "k8s-prod.yaml"
NS = "diffexplainer-prod"
BUCKET = "diffexplainer-prod-artifacts"
SETTINGS_KEYS = list(yaml.safe_load((ROOT / "infra/k8s/base/configmap.yaml").read_text())["data"])
ALL_VERBS = sum(len(verbs) for _, _, verbs in RBAC_RULES)
VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.2", "gitCommit": "0" * 40, "gitTreeState": "clean",
           "buildDate": "2024-06-11T20:20:00Z", "goVersion": "go1.22.4", "compiler": "gc", "platform": "linux/amd64"}


def _node(name: str, pool: str, gpus: str, memory: str, cpu: str, taint: bool = False,
          unschedulable: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"unschedulable": unschedulable}
    if taint:
        spec["taints"] = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    return {"metadata": {"name": name, "labels": {"diffexplainer.io/node-pool": pool}}, "spec": spec,
            "status": {"allocatable": {"nvidia.com/gpu": gpus, "memory": memory, "cpu": cpu},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


@dataclass
class Cluster:
    """What the fake API server holds, and what it was asked."""

    namespaces: set[str]
    secrets: dict[str, tuple[str, list[str]]]  # name -> (type, keys)
    configmaps: dict[str, list[str]]
    accounts: dict[str, list[str]]  # name -> imagePullSecrets
    denied: set[tuple[str, str]]  # (resource or resource/subresource, verb) SelfSubjectAccessReview denies
    nodes: list[dict[str, Any]]
    buckets: set[str]
    mlflow_up: bool = True
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    reviews: list[dict[str, str]] = field(default_factory=list)  # resourceAttributes of each access review


def healthy() -> Cluster:
    return Cluster(
        namespaces={NS},
        secrets={"diffexplainer-s3": ("Opaque", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]),
                 "diffexplainer-mlflow-db": ("Opaque", ["MLFLOW_BACKEND_STORE_URI"]),
                 "diffexplainer-registry": ("kubernetes.io/dockerconfigjson", [".dockerconfigjson"])},
        configmaps={"diffexplainer-settings": SETTINGS_KEYS},
        accounts={"diffexplainer-pipeline": ["diffexplainer-registry"]},
        denied=set(),
        nodes=[_node("cpu-1", "cpu", "0", "64Gi", "16"), _node("gpu-1", "gpu", "2", "120Gi", "30", taint=True)],
        buckets={BUCKET},
    )


def broken() -> Cluster:
    c = healthy()
    del c.secrets["diffexplainer-s3"]
    c.denied = {("cronjobs", "create")}
    c.nodes = [_node("cpu-1", "cpu", "0", "64Gi", "16"), _node("gpu-small", "gpu", "1", "32Gi", "30", taint=True),
               _node("gpu-cordoned", "gpu", "4", "480Gi", "64", taint=True, unschedulable=True)]
    c.mlflow_up = False
    return c


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": {404: "NotFound", 500: "InternalError"}.get(code, "Unknown"), "code": code}


def _serve(cluster: Cluster) -> ThreadingHTTPServer:
    """A loopback server answering as ``cluster``; its port is ``server.server_address[1]``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, code: int, body: Any = None) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _get(self) -> tuple[int, Any]:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["version"]:
                return 200, VERSION
            if parts == ["health"]:
                return (200, b"OK") if cluster.mlflow_up else (503, b"down")
            if parts == ["api", "v1", "nodes"]:
                return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": cluster.nodes}
            if parts[:3] != ["api", "v1", "namespaces"] or len(parts) not in (4, 6):
                return 404, _status(404, f"no route {self.path}")
            ns = parts[3]
            if len(parts) == 4:
                if ns in cluster.namespaces:
                    return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns},
                                 "status": {"phase": "Active"}}
                return 404, _status(404, f'namespaces "{ns}" not found')
            kind, name = parts[4], parts[5]
            if ns in cluster.namespaces:
                if kind == "secrets" and name in cluster.secrets:
                    typ, keys = cluster.secrets[name]
                    return 200, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name}, "type": typ,
                                 "data": {k: "eA==" for k in keys}}
                if kind == "configmaps" and name in cluster.configmaps:
                    return 200, {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name},
                                 "data": {k: "x" for k in cluster.configmaps[name]}}
                if kind == "serviceaccounts" and name in cluster.accounts:
                    return 200, {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": name},
                                 "imagePullSecrets": [{"name": s} for s in cluster.accounts[name]]}
            return 404, _status(404, f'{kind} "{name}" not found')

        def do_GET(self) -> None:  # noqa: N802
            cluster.seen.append(("GET", self.path, dict(self.headers)))
            self._send(*self._get())

        def do_HEAD(self) -> None:  # noqa: N802  (S3 head_bucket, path style)
            cluster.seen.append(("HEAD", self.path, dict(self.headers)))
            self._send(200 if self.path.strip("/") in cluster.buckets else 404)

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            cluster.seen.append(("POST", self.path, dict(self.headers)))
            if self.path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                return self._send(404, _status(404, f"no route {self.path}"))
            attrs = body["spec"]["resourceAttributes"]
            cluster.reviews.append(attrs)
            resource = attrs["resource"] + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
            allowed = (resource, attrs["verb"]) not in cluster.denied and attrs.get("namespace") in cluster.namespaces
            status = {"allowed": allowed} | ({} if allowed else {"reason": ""})
            self._send(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                             "metadata": {}, "spec": body["spec"], "status": status})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Env:
    kubeconfig: Path
    clusters: dict[str, Cluster]
    ports: dict[str, int]


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    clusters = {"healthy": healthy(), "broken": broken()}
    servers = {name: _serve(c) for name, c in clusters.items()}
    ports = {name: s.server_address[1] for name, s in servers.items()} | {"down": _closed_port()}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "healthy",
        "clusters": [{"name": n, "cluster": {"server": f"http://127.0.0.1:{p}"}} for n, p in ports.items()],
        "users": [{"name": "tester", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "tester"}} for n in ports],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("ARTIFACT_STORE_URI", f"s3://{BUCKET}/zenml")
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "eu-central-1",
                       "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    yield Env(kubeconfig, clusters, ports)
    for s in servers.values():
        s.shutdown()
        s.server_close()


def _point(monkeypatch: pytest.MonkeyPatch, env: Env, services: str) -> None:
    """S3 endpoint and MLflow tracking URI of the prod config at the ``services`` server."""
    port = env.ports[services]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    rc = main(["k8s", "preflight", "--config", str(PROD), *args])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err.strip().splitlines()


def _lines(out: list[str], prefix: str) -> list[str]:
    return [line for line in out if line.startswith(prefix)]


def test_healthy_cluster_passes_every_check(env: Env, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, env, "healthy")
    rc, out, err = _run(capsys)  # no --context: the kubeconfig's current context (healthy)
    assert rc == 0, out
    assert err == []
    assert not _lines(out, "FAIL"), out
    checks = out[:-1]
    assert all(line.startswith("ok   ") for line in checks)
    assert out[-1] == f"preflight: all {len(checks)} checks passed (k8s-prod.yaml)"
    assert f"ok   namespace: {NS} exists" in out
    assert f"ok   service account: diffexplainer-pipeline exists in namespace {NS}" in out
    for verbs, kind in (("get, list, watch, create, delete, patch", "pods"), ("get, list", "pods/log"),
                        ("get, list, watch", "events"), ("get, list, create, update, patch, delete", "secrets"),
                        ("get, list, create, delete", "services"),
                        ("get, list, watch, create, update, patch, delete", "cronjobs.batch")):
        assert f"ok   rbac: may {verbs} {kind} in namespace {NS} (context healthy)" in out
    assert len(_lines(out, "ok   rbac:")) == len(RBAC_RULES)  # one line per resource, not per verb
    for name in ("diffexplainer-s3", "diffexplainer-mlflow-db"):
        assert any(line.startswith(f"ok   secret: {name} exists") for line in out), name
    assert "ok   secret: diffexplainer-s3 exists with keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in out
    assert f"ok   configmap: diffexplainer-settings exists with all {len(SETTINGS_KEYS)} expected keys" in out
    assert "ok   image pull secret: diffexplainer-registry exists" in out
    gpu = _lines(out, "ok   gpu nodes:")
    assert len(gpu) == 1 and "1 node(s) fit profile gpu (nvidia.com/gpu 1, memory 48Gi, cpu 6" in gpu[0]
    assert gpu[0].endswith(": gpu-1; 1 needed")
    assert _lines(out, f"ok   artifact store: bucket {BUCKET} reachable at http://127.0.0.1:")
    assert _lines(out, "ok   tracking server: http://127.0.0.1:") and "/health answers HTTP 200" in out[-2]
    cluster = env.clusters["healthy"]
    assert ("HEAD", f"/{BUCKET}") in {(m, p) for m, p, _ in cluster.seen}
    reviews = [h for m, p, h in cluster.seen if m == "POST"]
    assert len(reviews) == ALL_VERBS and all("Impersonate-User" not in h for h in reviews)
    asked = [(a.get("group") or "", a["resource"] + (f"/{a['subresource']}" if a.get("subresource") else ""), a["verb"])
             for a in cluster.reviews]
    assert sorted(asked) == sorted((g, r, v) for g, r, verbs in RBAC_RULES for v in verbs)
    assert {a["namespace"] for a in cluster.reviews} == {NS}


def test_broken_cluster_reports_each_problem(env: Env, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, env, "broken")
    rc, out, err = _run(capsys, "--context", "broken")
    assert rc == 1
    assert err == [] and not any("Traceback" in line for line in out)
    failed = _lines(out, "FAIL")
    assert out[-1] == f"preflight: {len(failed)} of {len(out) - 1} checks failed (k8s-prod.yaml)"
    assert f"FAIL secret: diffexplainer-s3 does not exist in namespace {NS}" in failed
    assert f"FAIL rbac: cannot create cronjobs.batch in namespace {NS} (context broken): no RBAC rule allows it" in failed
    gpu = [line for line in failed if line.startswith("FAIL gpu nodes:")]
    assert len(gpu) == 1
    assert "0 of 1 needed node(s) fit profile gpu" in gpu[0]
    assert "gpu-small: memory 32Gi < 48Gi" in gpu[0] and "gpu-cordoned: cordoned" in gpu[0]
    assert "1 node(s) outside the pool" in gpu[0]
    tracking = [line for line in failed if line.startswith("FAIL tracking server:")]
    assert len(tracking) == 1 and "/health answers HTTP 503" in tracking[0]
    assert len(failed) == 4, failed
    # what is fine in the broken cluster stays ok
    assert f"ok   namespace: {NS} exists" in out
    assert f"ok   rbac: may get, list, watch, create, update, patch, delete jobs.batch in namespace {NS} " \
           "(context broken)" in out
    assert _lines(out, "ok   artifact store:")


def test_missing_namespace_and_bucket(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    _point(monkeypatch, env, "healthy")
    monkeypatch.setenv("ARTIFACT_STORE_URI", "s3://no-such-bucket/zenml")
    config = tmp_path / "k8s-other.yaml"
    config.write_text(PROD.read_text().replace(f"namespace: {NS}", "namespace: diffexplainer-missing"))
    rc = main(["k8s", "preflight", "--config", str(config), "--context", "healthy"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert "FAIL namespace: diffexplainer-missing does not exist (kubectl apply -k infra/k8s/overlays/...)" in out
    assert "FAIL secret: diffexplainer-s3 does not exist in namespace diffexplainer-missing" in out
    assert "FAIL rbac: cannot get, list, watch, create, delete, patch pods in namespace diffexplainer-missing " \
           "(context healthy): no RBAC rule allows it" in out
    assert any(line.startswith("FAIL artifact store: bucket no-such-bucket at http://127.0.0.1:")
               and line.endswith("does not exist") for line in out)
    assert any(line.startswith("ok   gpu nodes:") for line in out)  # nodes are cluster-wide


def test_unreachable_api_server_is_a_failed_check_not_a_crash(env: Env, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, env, "healthy")
    rc, out, err = _run(capsys, "--context", "down")
    assert rc == 1 and err == []
    port = env.ports["down"]
    assert out[0].startswith(f"FAIL api server: context down (http://127.0.0.1:{port}): ")
    assert "Connection refused" in out[0] and "object at 0x" not in out[0]
    assert out[1].startswith("FAIL cluster: ") and out[1].endswith("cluster check(s) not run: the API server does not answer")
    assert _lines(out, "ok   artifact store:") and _lines(out, "ok   tracking server:")
    assert out[-1] == "preflight: 2 of 4 checks failed (k8s-prod.yaml)"


def test_as_service_account_impersonates_it(env: Env, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, env, "healthy")
    rc, out, _ = _run(capsys, "--as-service-account")
    assert rc == 0, out
    assert f"ok   rbac: may get, list, watch, create, update, patch, delete cronjobs.batch in namespace {NS} " \
           "(service account diffexplainer-pipeline)" in out
    assert len(_lines(out, "ok   rbac:")) == len(RBAC_RULES)
    reviews = [h for m, p, h in env.clusters["healthy"].seen if m == "POST"]
    assert [h.get("Impersonate-User") for h in reviews] == \
        [f"system:serviceaccount:{NS}:diffexplainer-pipeline"] * ALL_VERBS
    gets = [h for m, p, h in env.clusters["healthy"].seen if m == "GET" and p.startswith("/api")]
    assert gets and all("Impersonate-User" not in h for h in gets)  # only the reviews impersonate


@pytest.mark.parametrize("args, denied, failed", [
    ([], {("pods", "watch")}, f"cannot watch pods in namespace {NS} (context healthy)"),
    ([], {("pods/log", "get")}, f"cannot get pods/log in namespace {NS} (context healthy)"),
    ([], {("jobs", "delete")}, f"cannot delete jobs.batch in namespace {NS} (context healthy)"),
    (["--as-service-account"], {("pods", "list"), ("pods", "watch")},
     f"cannot list, watch pods in namespace {NS} (service account diffexplainer-pipeline)"),
])
def test_a_denied_verb_fails_its_resource(env: Env, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          denied: set[tuple[str, str]], failed: str) -> None:
    """One verb the Role grants is denied: one FAIL line naming it and its resource, exit 1."""
    _point(monkeypatch, env, "healthy")
    env.clusters["healthy"].denied = denied
    rc, out, err = _run(capsys, *args)
    assert rc == 1 and err == []
    assert _lines(out, "FAIL") == [f"FAIL rbac: {failed}: no RBAC rule allows it"]
    assert len(_lines(out, "ok   rbac:")) == len(RBAC_RULES) - 1
    assert out[-1] == f"preflight: 1 of {len(out) - 1} checks failed (k8s-prod.yaml)"


def test_rbac_rules_are_the_shipped_role() -> None:
    """``RBAC_RULES`` asks for exactly what ``infra/k8s/base/rbac.yaml``'s Role grants, once each."""
    docs = list(yaml.safe_load_all((ROOT / "infra/k8s/base/rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    checked = [(group, resource, verb) for group, resource, verbs in RBAC_RULES for verb in verbs]
    assert len(checked) == len(set(checked))
    assert set(checked) == granted
    resources = [(group, resource) for group, resource, _ in RBAC_RULES]
    assert len(resources) == len(set(resources))  # one entry, hence one line, per resource


class _Authz:
    """Stands in for ``AuthorizationV1Api``: answers each verb's review from ``answers``
    (True: allowed; a string: denied with that reason; None: no status; an exception: raised)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str | None, str]] = []

    def create_self_subject_access_review(self, body: Any, _request_timeout: Any = None) -> Any:
        attrs = body.spec.resource_attributes
        self.asked.append((attrs.resource, attrs.subresource, attrs.verb))
        answer = self.answers[attrs.verb]
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            return SimpleNamespace(status=None)
        return SimpleNamespace(status=SimpleNamespace(allowed=answer is True, reason="" if answer is True else answer))


def test_check_rbac_names_the_denied_verbs_and_their_reasons() -> None:
    authz = _Authz({"get": True, "list": "RBAC: no rule", "watch": "RBAC: no rule", "delete": None})
    result = check_rbac(authz, NS, "", "pods", ["get", "list", "watch", "delete"], "context c", 1.0)
    assert result.line() == f"FAIL rbac: cannot list, watch, delete pods in namespace {NS} (context c): RBAC: no rule"
    assert authz.asked == [("pods", None, "get"), ("pods", None, "list"), ("pods", None, "watch"),
                           ("pods", None, "delete")]
    log = _Authz({"get": True, "list": True})
    assert check_rbac(log, NS, "", "pods/log", ["get", "list"], "context c", 1.0).line() == \
        f"ok   rbac: may get, list pods/log in namespace {NS} (context c)"
    assert log.asked == [("pods", "log", "get"), ("pods", "log", "list")]


def test_check_rbac_stops_at_a_review_the_server_does_not_answer() -> None:
    from kubernetes.client.exceptions import ApiException

    authz = _Authz({"get": True, "list": ApiException(status=403, reason="Forbidden"), "watch": True})
    result = check_rbac(authz, NS, "batch", "jobs", ["get", "list", "watch"], "context c", 1.0)
    assert result.line() == "FAIL rbac: cannot ask whether context c may list jobs.batch: HTTP 403 Forbidden"
    assert [verb for _, _, verb in authz.asked] == ["get", "list"]


@pytest.mark.parametrize("args, message", [
    (["--config", "configs/no-such.yaml"], "no-such.yaml"),
    (["--context", "nope"], "no context 'nope'"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig /nonexistent/kubeconfig: no such file"),
])
def test_user_errors_exit_2_with_one_line(env: Env, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    _point(monkeypatch, env, "healthy")
    rc = main(["k8s", "preflight", *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.mark.parametrize("section, message", [
    ("preflight:\n  min_gpu_nodes: 0\n", "preflight.min_gpu_nodes: expected a positive integer"),
    ("preflight:\n  secrets: diffexplainer-s3\n", "preflight.secrets: expected a list of Secret names"),
    ("preflight:\n  secret: [a]\n", "preflight: unknown key(s) ['secret']"),
])
def test_bad_preflight_fields_exit_2(env: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     section: str, message: str) -> None:
    base = PROD.read_text().split("\npreflight:")[0]
    config = tmp_path / "k8s.yaml"
    config.write_text(base + "\n" + section)
    rc = main(["k8s", "preflight", "--config", str(config)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_local_tracking_store_fails_the_tracking_check(env: Env, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the CLI points MLFLOW_TRACKING_URI at the local SQLite store: a FAIL saying so, not a crash."""
    _point(monkeypatch, env, "healthy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///state/mlflow.db")
    rc, out, _ = _run(capsys)
    assert rc == 1
    assert _lines(out, "FAIL") == ["FAIL tracking server: sqlite:///state/mlflow.db is not the http(s) URL of a "
                                   "tracking server (preflight.tracking_uri; export MLFLOW_TRACKING_URI=https://...)"]


def test_what_the_prod_config_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.k8s import load_k8s_settings
    from pipelines.k8s_preflight import gpu_demands, referenced_objects

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.internal")
    settings = load_k8s_settings(PROD)
    secrets, configmaps, pull = referenced_objects(settings)
    assert secrets == {"diffexplainer-mlflow-db": [], "diffexplainer-s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]}
    assert configmaps == {"diffexplainer-settings": SETTINGS_KEYS}
    assert pull == ["diffexplainer-registry"]
    (demand,) = gpu_demands(settings)
    assert demand.profile == "gpu" and demand.requests == {"nvidia.com/gpu": "1", "memory": "48Gi", "cpu": "6"}
    assert demand.node_selector == {"diffexplainer.io/node-pool": "gpu"}
    assert set(demand.steps) == {"train_diffae_step", "train_teacher_step", "encode_latents_step",
                                 "reconstruction_gate_step", "evaluate_counterfactuals_step"}
