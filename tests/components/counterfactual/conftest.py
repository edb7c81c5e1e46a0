"""Fixtures: tiny stand-in models (see ``standins/cf_standins.py``) and a borderline cohort."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "standins"))

from cf_standins import make_standins  # noqa: E402


@pytest.fixture()
def standins():
    """``(diffae, agent, black_box, x [6,4,16,16])`` with an agent aligned to the teacher."""
    return make_standins(6)
