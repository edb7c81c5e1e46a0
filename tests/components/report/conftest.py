"""Report tests reuse the counterfactual tests' stand-in models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "counterfactual" / "standins"))

from cf_standins import make_standins  # noqa: E402


@pytest.fixture()
def standins():
    """``(diffae, agent, black_box, x [4,4,16,16])``."""
    return make_standins(4)
