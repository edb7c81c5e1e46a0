"""infra/docker/Dockerfile, read as text (no Docker engine here): base, user, install, secrets."""

from __future__ import annotations

import re
import tomllib

import pytest
from infra_common import ROOT

DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return {k: v for word, rest in _instructions() if word == "ARG" and "=" in rest
            for k, v in [rest.split("=", 1)]}


def _expand(s: str) -> str:
    args = _args()
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), s)


def test_base_image_is_python_311():
    froms = [_expand(rest) for word, rest in _instructions() if word == "FROM"]
    assert froms and all(re.match(r"(python:3\.11|pytorch/pytorch:|nvidia/cuda:)", f) for f in froms), froms
    assert not any(f.split(" ")[0].endswith(":latest") for f in froms)


def test_runs_as_a_non_root_user():
    users = [_expand(rest) for word, rest in _instructions() if word == "USER"]
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid not in {"root", "0"} and (not uid.isdigit() or int(uid) >= 1000)


def test_installs_the_project_from_pyproject_with_the_pinned_torch():
    ins = _instructions()
    copies = [i for i, (w, r) in enumerate(ins) if w == "COPY" and "pyproject.toml" in r]
    installs = [i for i, (w, r) in enumerate(ins) if w == "RUN" and re.search(r'pip install (-e )?"?\.(\$\{EXTRAS\})?"?(\s|$)', r)]
    assert copies and installs and copies[0] < installs[0]
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(p for p in pins if p.startswith("torch=="))
    assert _args()["TORCH_VERSION"] == torch_pin.split("==")[1]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert _args().get("EXTRAS", "").strip('"') == "" and "kubeflow" in extras  # lean by default, [kubeflow] on demand
    torch_run = next(r for w, r in ins if w == "RUN" and "torch==" in r)
    assert "--index-url" in torch_run and "TORCH_INDEX_URL" in torch_run
    assert _args()["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")
    for package_dir in ("components", "registry", "steps", "pipelines", "configs"):
        assert any(w == "COPY" and package_dir in r for w, r in ins), package_dir


def test_entrypoint_is_the_cli():
    entry = [rest for word, rest in _instructions() if word == "ENTRYPOINT"]
    assert entry and "diffexplainer" in entry[-1] and entry[-1].startswith("[")


@pytest.mark.parametrize("pattern", [r"AKIA[0-9A-Z]{16}", r"(?i)(secret|token|password|api_key)\s*=",
                                     r"(?i)aws_secret_access_key"])
def test_no_secrets_in_the_image_definition(pattern):
    for word, rest in _instructions():
        if word in {"ENV", "ARG", "RUN", "LABEL"}:
            assert not re.search(pattern, rest), (word, rest)


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".diffexplainer", ".env"} <= ignored
