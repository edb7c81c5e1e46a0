"""Nested-dict helpers shared by config loading and pipeline settings."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: where both hold a mapping they merge recursively, otherwise
    ``over``'s value replaces (lists included). Neither input is modified; the result shares
    no containers with them (deep copies). This is also how ZenML merges a step's settings over
    the pipeline's.
    """
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
