"""Nested-dict helpers shared by config loading, pipeline settings and run tracking."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge", "flatten"]


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


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Leaves of a nested mapping under joined keys: ``{"a": {"b": 1}} -> {"a.b": 1}``.

    Args:
        d: the nested mapping; a value that is a mapping is descended into, anything else
            (lists included) is a leaf.
        prefix: prepended to every key.
        sep: joins a key to its parent's.

    Returns:
        ``{prefix + "k1" + sep + "k2"...: leaf}`` in the mapping's order; an empty nested
        mapping contributes nothing.
    """
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + sep, sep))
        else:
            out[name] = value
    return out
