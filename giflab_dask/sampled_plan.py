"""Planning a sampled batch: which aligned frames each sampled node measures.

A sample's design (uniform, key frames, or adaptive after a pilot pass) is decided per pair on
the client; :class:`~giflab_dask.graph.build.PairGraph` turns it into tasks that read only the
sampled frames, and :func:`~giflab_dask.graph.tasks.write_sampled_node` stores the node with
the estimates its intervals come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.resultstore import metric_node_key
from giflab_dask.sampling import SampleDesign

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from giflab_dask.align import AlignOptions, FrameAlignment
    from giflab_dask.decode import GifLayout
    from giflab_dask.graph.build import PairGraph
    from giflab_dask.inputs import PairInput
    from giflab_dask.metrics import MetricSpec
    from giflab_dask.outcomes import PairOutcome
    from giflab_dask.resultstore import ResultStore
    from giflab_dask.sampling import SampleSpec

__all__ = ["pairs_needing_pilot", "sampled_writes"]

#: A metric's sample: its design, the positions this run measures, what a pilot already knows.
_Plan = tuple[SampleDesign, np.ndarray, dict[str, Any] | None]


def _change_scores(layout: GifLayout) -> np.ndarray:
    """Per frame of a GIF: the bytes of its image data (what the encoder had to store)."""
    return np.array([f.lzw_end - f.lzw_offset for f in layout.frames], dtype=np.float64)


def pairs_needing_pilot(
    to_build: Sequence[tuple[int, list[MetricSpec]]],
    outcomes: Sequence[PairOutcome],
    options: AlignOptions,
    sample: SampleSpec,
    pilot_store: ResultStore,
    refresh: bool,
) -> list[PairInput]:
    """The pairs whose adaptive nodes are missing and whose pilot nodes are too."""
    pilot = sample.pilot()
    need = []
    for index, missing_specs in to_build:
        o = outcomes[index]
        keys = [
            metric_node_key(o.original_key or "", o.compressed_key or "", options, s, pilot)
            for s in missing_specs
        ]
        if refresh or any(pilot_store.get(k) is None for k in keys):
            need.append(o.input)
    return need


def _adaptive_plan(
    outcome: PairOutcome,
    spec: MetricSpec,
    options: AlignOptions,
    sample: SampleSpec,
    pilot_store: ResultStore,
) -> tuple[SampleDesign, dict[str, Any]] | None:
    """An adaptive metric's design from its pilot node's values, and the pilot's measured
    frames (not measured again); None (and the metric failed) when the pilot is missing."""
    from giflab_dask.sampling import adaptive_design, seed_for

    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    data = pilot_store.get(metric_node_key(o_key, c_key, options, spec, sample.pilot()), "metric")
    if data is None or "sample" not in data:
        outcome.failed[spec.name] = "adaptive sampling: its pilot sample is missing"
        return None
    pilot = SampleDesign.from_dict(data["sample"]["design"])
    per_frame = [data["outputs"][o]["per_frame"] for o in spec.outputs]
    values = np.stack([np.asarray(v, dtype=np.float64) for v in per_frame], axis=1)
    seed = seed_for(o_key, c_key, sample.label, spec.name)
    design = adaptive_design(pilot, values, sample.n, sample.tolerance, seed)
    known = {
        "positions": pilot.positions.tolist(),
        "values": {o: data["outputs"][o]["per_frame"] for o in spec.outputs},
    }
    return design, known


def _metric_plans(
    outcome: PairOutcome,
    specs: Sequence[MetricSpec],
    facts: FrameAlignment,
    sample: SampleSpec,
    pilot_store: ResultStore | None,
    layout: Callable[[], GifLayout],
) -> dict[str, _Plan]:
    """Which frames each metric measures: the pair's design, less an adaptive pilot's known
    ones (each adaptive metric has a design of its own)."""
    from giflab_dask.sampling import design_for, seed_for

    o_key, c_key = outcome.original_key or "", outcome.compressed_key or ""
    population = len(facts.mapping)
    base = sample.pilot() if sample.strategy == "adaptive" else sample
    scores = None
    if base.strategy == "keyframes" and base.n < population:
        scores = _change_scores(layout())
    shared = design_for(base, population, seed_for(o_key, c_key, base.label), scores)
    plans: dict[str, _Plan] = {}
    for spec in specs:
        design, known = shared, None
        if sample.strategy == "adaptive":
            assert pilot_store is not None
            adaptive = _adaptive_plan(outcome, spec, facts.options, sample, pilot_store)
            if adaptive is None:
                continue
            design, known = adaptive
        todo = np.setdiff1d(design.positions, (known or {}).get("positions", []))
        plans[spec.name] = (design, todo.astype(np.int64), known)
    return plans


def sampled_writes(
    outcome: PairOutcome,
    specs: Sequence[MetricSpec],
    graph: PairGraph,
    sample: SampleSpec,
    pilot_store: ResultStore | None,
    layout: Callable[[], GifLayout],
) -> list[tuple[MetricSpec, Delayed]]:
    """The ``result-write`` tasks of one sampled pair: its design, then one task per metric
    over ``pair-metrics`` tasks that read and measure only the sampled frames."""
    plans = _metric_plans(outcome, specs, graph.facts, sample, pilot_store, layout)
    # Metrics measuring the same frames share pair-metrics tasks (one group per design and
    # kind: temporal metrics also read the frame before each sampled one).
    groups: dict[tuple[bool, bytes], list[MetricSpec]] = {}
    for spec in specs:
        if spec.name in plans:
            groups.setdefault((spec.temporal, plans[spec.name][1].tobytes()), []).append(spec)
    out = []
    for group in groups.values():
        records: dict[str, Mapping[str, Any]] = {}
        for spec in group:
            design, todo, known = plans[spec.name]
            records[spec.name] = {
                "spec": sample.to_dict(),
                "design": design.to_dict(),
                "computed": todo.tolist(),
                "known": known,
            }
        todo = plans[group[0].name][1]
        out += graph.sampled_writes(outcome.metric_keys, group, todo, records)
    return out
