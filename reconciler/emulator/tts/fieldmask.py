"""Field masks: per-RPC allow-lists, `non_zero_path`, projection, merging (FACTS §b, §d, §e)."""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from typing import Any

from reconciler.emulator.tts import errors
from reconciler.providers.tts import reference


def check_allowed(rpc: str, paths: list[str]) -> None:
    forbidden = _forbidden(rpc, tuple(paths))
    if forbidden:
        raise errors.field_mask_paths(forbidden_paths=list(forbidden))


@lru_cache(maxsize=1024)
def _forbidden(rpc: str, paths: tuple[str, ...]) -> tuple[str, ...]:
    # Once per RPC and mask: a fleet's reads and writes repeat a handful of masks.
    spec = reference.rpc_field_masks().get(rpc)
    if spec is None:
        return ()
    return tuple(p for p in paths if p not in spec.allowed)


@cache
def _is_zero_paths(rpc: str) -> tuple[str, ...]:
    spec = reference.rpc_field_masks()[rpc]
    assert spec.all_paths_of is not None
    return tuple(
        sorted(p for p in reference.all_schema_paths(spec.all_paths_of) if p not in spec.allowed)
    )


def _go_sort_search(n: int, predicate: Any) -> int:
    """Go's sort.Search, step for step: the validator calls it with a predicate that is not
    monotonic over the sorted path list, so the blocks it finds depend on this exact bisection."""
    low, high = 0, n
    while low < high:
        middle = (low + high) >> 1
        if not predicate(middle):
            low = middle + 1
        else:
            high = middle
    return low


def has_path(data: dict[str, Any], path: str) -> bool:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_non_zero(rpc: str, paths: list[str], entity: dict[str, Any]) -> None:
    """Sub-paths of a masked parent that the RPC does not allow must be zero in the body.

    Reproduces the server's lookup (pkg/rpcmiddleware/validator): a binary search for the first
    disallowed path under `p.`, then the contiguous run after it. The search misses some blocks
    (e.g. `ids.dev_addr` under `ids`), exactly like the real server."""
    spec = reference.rpc_field_masks().get(rpc)
    if spec is None or not spec.set_rpc or spec.all_paths_of is None:
        return
    zero_paths = _is_zero_paths(rpc)
    n = len(zero_paths)
    if n == 0:
        return
    for path in paths:
        prefix = path + "."
        i = _go_sort_search(n, lambda k, prefix=prefix: zero_paths[k].startswith(prefix))
        if i == n or not zero_paths[i].startswith(prefix):
            continue
        j = i + 1
        while j < n and zero_paths[j].startswith(prefix):
            j += 1
        for sub in zero_paths[i:j]:
            if has_path(entity, sub):
                raise errors.non_zero_path(path=sub)


def normalize(paths: list[str]) -> list[str]:
    """Drop duplicates and paths covered by a parent already in the mask (order kept)."""
    unique = list(dict.fromkeys(paths))
    present = set(unique)
    out = []
    for path in unique:
        parts = path.split(".")
        if any(".".join(parts[:k]) in present for k in range(1, len(parts))):
            continue
        out.append(path)
    return out


def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        child: Any = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def delete_path(data: dict[str, Any], path: str) -> None:
    parts = path.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def merge(target: dict[str, Any], source: dict[str, Any], paths: list[str]) -> None:
    """Set each masked path in `target` to its value in `source`; absent there means clear."""
    for path in normalize(paths):
        value = get_path(source, path)
        if value is None:
            delete_path(target, path)
        else:
            set_path(target, path, copy.deepcopy(value))


def project(data: dict[str, Any], paths: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Only the masked paths (a parent path keeps its subtree; a leaf comes back nested)."""
    out: dict[str, Any] = {}
    for path in paths:
        if "." not in path:
            if path in data:
                out[path] = data[path]
            continue
        value = get_path(data, path)
        if value is not None:
            _set_projected(out, path, value)
    return out


def _set_projected(out: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = out
    for part in parts[:-1]:
        child: Any = node.get(part)
        if child is None:
            child = {}
            node[part] = child
        elif not isinstance(child, dict):
            return
        node = child
    if parts[-1] not in node:
        node[parts[-1]] = value
