"""Who may import whom: components (the pure library) < registry (the MLflow adapter) < steps
< pipelines. Checked on every import statement, module level or inside functions. The one
exception: ``pipelines.env`` (where the project-local ZenML / MLflow state lives), which the
MLflow adapter and the step tracking read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "components": {"zenml", "mlflow", "kubernetes", "registry", "steps", "pipelines"},
    "registry": {"steps", "pipelines"},
    "steps": {"pipelines"},
}
ALLOWED = {"registry": {"pipelines.env"}, "steps": {"pipelines.env"}}


def _imported(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downwards(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    bad = {str(f.relative_to(ROOT)): sorted(m for m in _imported(f) - ALLOWED.get(package, set())
                                            if m.split(".")[0] in FORBIDDEN[package]) for f in files}
    assert {f: roots for f, roots in bad.items() if roots} == {}
