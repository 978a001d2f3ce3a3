"""The last check of an unpickled result: every leaf an admitted value, no cycle, bounded depth.

Needed on top of the checks the interpreter makes when it inserts a value, because a memoised list can
be filled after it was stored elsewhere. The walk is iterative (no file-chosen recursion) and visits a
shared sub-container once (heights are remembered), so a file cannot make it exponential either.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from liftbench.data.safe.numpy_rebuild import SCALAR_TYPES, is_numeric_dtype, printable


def check_tree(root: Any, max_depth: int) -> str | None:
    """Why ``root`` may not be returned to the caller (a phrase for "pickled data ..."), or None."""
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    frames: list[list[Any]] = []
    if not _is_container(root):
        return _leaf_problem(root)
    on_path.add(id(root))
    frames.append([root, _children(root), 0])
    while frames:
        frame = frames[-1]
        for child in frame[1]:
            if not _is_container(child):
                problem = _leaf_problem(child)
                if problem:
                    return problem
                continue
            if id(child) in heights:
                frame[2] = max(frame[2], heights[id(child)])
                continue
            if id(child) in on_path:
                return "contains a container that includes itself"
            if len(frames) >= max_depth:
                return f"nests containers more than {max_depth} deep"
            on_path.add(id(child))
            frames.append([child, _children(child), 0])
            break
        else:
            frames.pop()
            on_path.discard(id(frame[0]))
            heights[id(frame[0])] = frame[2] + 1
            if frames:
                frames[-1][2] = max(frames[-1][2], frame[2] + 1)
    return None


def _leaf_problem(value: Any) -> str | None:
    if type(value) in SCALAR_TYPES:
        return None
    if isinstance(value, (np.ndarray, np.generic)) and is_numeric_dtype(value.dtype):
        return None
    return f"holds a {printable(type(value).__name__)}, which liftbench does not load"


def _is_container(value: Any) -> bool:
    return type(value) in (list, dict, tuple) or (type(value) is np.ndarray and value.dtype.hasobject)


def _children(value: Any):
    if type(value) is dict:
        return itertools.chain(value.keys(), value.values())
    if type(value) is np.ndarray:
        return iter(list(value.flat))
    return iter(value)
