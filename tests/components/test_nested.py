"""Nested-dict helpers: the one deep merge (config presets, k8s settings) and the one flatten
(MLflow params and metrics)."""

from __future__ import annotations

import copy

from components.nested import deep_merge, flatten


def test_deep_merge_merges_mappings_replaces_the_rest_and_copies() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"z": {"deep": 1}}}
    over = {"a": {"y": [3], "w": {"new": 1}}, "b": {"now": "a dict"}, "c": 5}
    kept = copy.deepcopy((base, over))
    merged = deep_merge(base, over)
    assert merged == {"a": {"x": 1, "y": [3], "w": {"new": 1}}, "b": {"now": "a dict"}, "c": 5}
    assert (base, over) == kept  # inputs untouched
    merged["a"]["y"].append(4)
    merged["a"]["w"]["new"] = 2
    assert (base, over) == kept  # and nothing shared with them
    assert deep_merge(base, {}) == base and deep_merge({}, over) == over


def test_flatten_joins_keys_and_keeps_leaves() -> None:
    d = {"a": {"b": 1, "c": {"d": None}}, "e": [1, {"f": 2}], "g": {}}
    assert flatten(d) == {"a.b": 1, "a.c.d": None, "e": [1, {"f": 2}]}
    assert flatten(d, prefix="p_", sep="_") == {"p_a_b": 1, "p_a_c_d": None, "p_e": [1, {"f": 2}]}
