"""Fixtures shared by component tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """Run a module with one intra-op thread: tiny models gain nothing from more, and a
    second thread on shared cores only adds synchronisation stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
