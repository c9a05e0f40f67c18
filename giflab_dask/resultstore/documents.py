"""Result-store documents: node keys, and the checks a stored node must pass to be read.

Every node has a key ``tokenize(kind, original key, compressed key, alignment options, metric
spec (name, kernel, parameters, version), SCHEMA_VERSION)``, so a change to any of them is a
new node rather than a stale one. A node is one JSON document (no pickle) holding the schema
version, the key, its kind, its data and a BLAKE2b checksum of the data. A document that does
not parse, fails its checksum, has another schema version or, read as a ``kind``, does not
have that kind's shape is not trusted: the store reports it and the batch recomputes it.

Kinds: ``metric`` (per-frame vectors and summaries of one metric of one pair) and ``alignment``
(the frame mapping and pair-level facts of one pair).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from giflab_dask import config

__all__ = [
    "SCHEMA_VERSION",
    "checksum",
    "document_problem",
    "make_document",
    "max_document_bytes",
    "node_key",
    "summary_of",
    "summary_problem",
    "verified",
]

#: Bump when the stored documents change shape or meaning.
SCHEMA_VERSION = 1


def node_key(kind: str, *parts: Any) -> str:
    """A node's key: a deterministic token of what determines its value."""
    from dask.base import tokenize

    return tokenize("giflab-node", kind, SCHEMA_VERSION, *parts)


def checksum(data: Any) -> str:
    """The BLAKE2b-128 of a node's data (as canonical JSON)."""
    payload = json.dumps(data, sort_keys=True, allow_nan=True).encode()
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def make_document(key: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The stored document of node ``key`` of ``kind`` holding ``data``."""
    return {
        "schema": SCHEMA_VERSION,
        "key": key,
        "kind": kind,
        "checksum": checksum(data),
        "data": data,
    }


def max_document_bytes() -> int:
    """The largest document a read accepts: far above any node this version writes (a metric
    node holds a few floats per frame, ~30 bytes each, at most ``giflab.limits.max-frames``
    frames), and small enough that a hostile file cannot exhaust memory."""
    frames = config.get("limits.max-frames")
    return 64 * 2**20 + 512 * int(frames if frames is not None else 2**21)


def document_problem(document: Any, key: str, kind: str | None) -> str | None:
    """Why a parsed document is not a valid node ``key`` (of ``kind``, if given), or None."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("schema") != SCHEMA_VERSION:
        return f"schema {document.get('schema')!r} != {SCHEMA_VERSION}"
    if document.get("key") != key or document.get("checksum") != checksum(document.get("data")):
        return "checksum mismatch"
    if not isinstance(document.get("data"), dict):
        return "its data is not a JSON object"
    if kind is not None:
        if document.get("kind") != kind:
            return f"kind {document.get('kind')!r}, expected {kind!r}"
        return _SHAPES[kind](document["data"])
    return None


def verified(raw: bytes, key: str, kind: str | None) -> tuple[Any, str | None]:
    """(the node's data, None), or (None, why the document cannot be trusted)."""
    try:
        document = json.loads(raw)
        problem = document_problem(document, key, kind)
    except (ValueError, RecursionError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        return None, f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"
    return (None, problem) if problem else (document["data"], None)


# -- the shape of each kind's data (what the pipeline reads from it) -------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: Any, what: str, length: int | None = None) -> str | None:
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        return f"{what} is not a list of numbers"
    if length is not None and len(value) != length:
        return f"{what} has {len(value)} values, expected {length}"
    return None


def _integers(value: Any, what: str, low: int = 0) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value
    ):
        return f"{what} is not a list of integers >= {low}"
    return None


def _metric_shape(data: dict[str, Any], vectors: bool = True) -> str | None:
    """A metric node's data; ``vectors=False``: its summary form (:func:`summary_of`), each
    output's ``per_frame`` vector replaced by its length ``n``."""
    from giflab_dask.reduce import STATS

    if not isinstance(data.get("metric"), str):
        return "metric name missing"
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return "outputs missing"
    lengths = set()
    for name, output in outputs.items():
        if not isinstance(output, dict):
            return f"output {name!r} is not an object"
        if vectors:
            problem = _numbers(output.get("per_frame"), f"{name}.per_frame")
            n: Any = len(output["per_frame"]) if problem is None else 0
        else:
            n = output.get("n")
            ok = isinstance(n, int) and not isinstance(n, bool) and n >= 0
            problem = None if ok else f"{name}.n is not a count"
        problem = problem or _numbers(output.get("summary"), f"{name}.summary", len(STATS))
        if problem:
            return problem
        lengths.add(n)
    if len(lengths) > 1:
        return "outputs have per-frame vectors of different lengths"
    extra = data.get("pair_summary", {})
    if not isinstance(extra, dict) or not all(_is_number(v) for v in extra.values()):
        return "pair_summary is not an object of numbers"
    seconds = data.get("compute_seconds", 0.0)
    if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        return "compute_seconds is not a duration"
    if "sample" in data:
        return _sample_shape(data["sample"], lengths.pop())
    return None


def _sample_shape(sample: Any, n_values: int) -> str | None:
    design = sample.get("design") if isinstance(sample, dict) else None
    if not isinstance(design, dict):
        return "sample.design missing"
    population = design.get("population")
    if not isinstance(population, int) or isinstance(population, bool) or population < 0:
        return "sample.design.population is not a count"
    for field in ("positions", "certain", "bounds"):
        problem = _integers(design.get(field), f"sample.design.{field}")
        if problem:
            return problem
    positions = design["positions"]
    if len(positions) != n_values or any(p >= population for p in positions):
        return "sample.design.positions do not match the per-frame vectors"
    se, df = sample.get("mean_se", {}), sample.get("mean_df", {})
    for field, values in (("mean_se", se), ("mean_df", df)):
        if not isinstance(values, dict) or not all(_is_number(v) for v in values.values()):
            return f"sample.{field} is not an object of numbers"
    if not set(se) <= set(df):
        return "sample.mean_df lacks outputs of sample.mean_se"
    return None


def _alignment_shape(data: dict[str, Any]) -> str | None:
    problem = _integers(data.get("mapping"), "mapping")
    if problem:
        return problem
    if not isinstance(data.get("mode"), str):
        return "mode missing"
    for field in ("size", "original_size", "compressed_size"):
        value = data.get(field)
        if _integers(value, field) or not isinstance(value, list) or len(value) != 2:
            return f"{field} is not [height, width]"
    notes = data.get("notes")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        return "notes is not a list of strings"
    facts = data.get("facts")
    if not isinstance(facts, dict) or not all(_is_number(v) for v in facts.values()):
        return "facts is not an object of numbers"
    frames = facts.get("compressed_frames")
    if not _is_number(frames) or any(m >= frames for m in data["mapping"]):
        return "mapping names frames the compressed GIF does not have"
    return None


_SHAPES = {"metric": _metric_shape, "alignment": _alignment_shape}


def summary_of(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the result index holds of a node: an alignment node whole, a metric node without
    its per-frame vectors (each output's ``per_frame`` becomes its length ``n``), which are
    read from the node's document when first used."""
    if kind != "metric":
        return data
    outputs = {
        name: {"summary": output["summary"], "n": len(output["per_frame"])}
        for name, output in data["outputs"].items()
    }
    return {**data, "outputs": outputs}


def summary_problem(kind: Any, data: Any) -> str | None:
    """Why ``data`` is not the summary form of a node of ``kind`` (:func:`summary_of`), or None."""
    if kind not in _SHAPES:
        return f"unknown kind {kind!r}"
    if not isinstance(data, dict):
        return "its data is not a JSON object"
    return _metric_shape(data, vectors=False) if kind == "metric" else _SHAPES[kind](data)
