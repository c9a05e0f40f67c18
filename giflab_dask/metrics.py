"""Metric specs, the registry, and the thin dask wrappers that apply kernels to aligned pairs.

A metric is a :class:`MetricSpec`: a name, a kernel (a plain numpy function following the
contract in :mod:`giflab_dask.kernels`), its parameters, its named outputs, whether it needs the
previous frame (temporal overlap), which direction is better, and a code version. Wrappers apply
kernels with ``map_blocks`` (pair kernels) or ``overlap`` + ``map_blocks`` (temporal kernels),
always with ``dtype=`` and ``meta=``, in layers named ``<metric>-frame-<token>``
(:func:`per_frame`). The batch graph runs the same per-block wrappers for all its metrics at
once on one aligned block, inside one task (:func:`measure_block`), so a block is read and
aligned once for all of them.

Users register their own metric with :func:`register_metric` (any function following the kernel
contract) and pick metrics by name.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from giflab_dask.errors import GiflabError, UnknownMetricError

if TYPE_CHECKING:
    import dask.array as da

    from giflab_dask.align import AlignedPair

__all__ = [
    "DEFAULT_METRICS",
    "BoundMetric",
    "MetricSpec",
    "UnknownMetricError",
    "available_metrics",
    "get_metric",
    "measure_block",
    "per_frame",
    "register_metric",
    "resolve_metrics",
]

Kernel = Callable[..., np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric computes and how to apply it (everything here is part of its cache key)."""

    name: str
    kernel: Kernel | str  # a function, or "module:function" imported on first use
    outputs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    temporal: bool = False
    higher_is_better: bool | Mapping[str, bool] = True
    version: str = "1"
    description: str = ""
    # Pair-level values from the whole (T, k) per-frame matrix, for metrics whose summary is
    # not a statistic of one vector (GifLab's temporal consistency, ΔE over all pixels).
    pair_summary: Callable[[np.ndarray], dict[str, float]] | str | None = None
    # A metric whose per-frame values are a function of another metric's (PSNR of MSE): when
    # that metric's node (at its registered parameters) is already stored, the batch computes
    # this one from its stored vector, ``derive(vector, **params)`` -> ``(t,)`` or ``(t, k)``,
    # reading no frame. The function must give exactly what the kernel gives (tests check),
    # so it is not part of the cache key.
    derive_from: str | None = None
    derive: Callable[..., np.ndarray] | str | None = None
    # What a frame needs for the metric to have a value (said when every frame is NaN);
    # documentation, not part of the cache key.
    needs: str = ""
    # Relative time per frame pixel (SSIM = 1), which balances a small batch's metric groups
    # (graph.build.metric_groups); a scheduling hint, not part of the cache key.
    cost: float = 1.0

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise GiflabError(f"metric name {self.name!r} must be letters, digits and underscores")
        if not self.outputs:
            object.__setattr__(self, "outputs", (self.name,))

    def resolve_kernel(self) -> Kernel:
        if callable(self.kernel):
            return self.kernel
        module, _, attr = self.kernel.partition(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_pair_summary(self) -> Callable[[np.ndarray], dict[str, float]] | None:
        if self.pair_summary is None or callable(self.pair_summary):
            return self.pair_summary
        module, _, attr = self.pair_summary.partition(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_derive(self) -> Callable[..., np.ndarray] | None:
        if self.derive is None or callable(self.derive):
            return self.derive
        module, _, attr = self.derive.partition(":")
        return getattr(importlib.import_module(module), attr)

    def with_params(self, **params: Any) -> MetricSpec:
        """A copy with some parameters changed (unknown names are an error)."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise GiflabError(
                f"metric {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"it takes {sorted(self.params) or 'none'}"
            )
        return MetricSpec(**{**self.__dict__, "params": {**self.params, **params}})

    def better_high(self, output: str) -> bool:
        if isinstance(self.higher_is_better, Mapping):
            return bool(self.higher_is_better.get(output, True))
        return bool(self.higher_is_better)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        kernel = self.kernel if isinstance(self.kernel, str) else _callable_name(self.kernel)
        return (
            "giflab-metric",
            self.name,
            kernel,
            self.outputs,
            sorted(self.params.items()),
            self.temporal,
            self.version,
            self.pair_summary
            if self.pair_summary is None or isinstance(self.pair_summary, str)
            else _callable_name(self.pair_summary),
        )


def _callable_name(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"


_REGISTRY: dict[str, MetricSpec] = {}

_K = "giflab_dask.kernels"
_BUILTIN = [
    MetricSpec("mse", f"{_K}.fidelity:mse", higher_is_better=False,
               description="mean squared error over RGB",
               cost=0.2),
    MetricSpec("rmse", f"{_K}.fidelity:rmse", higher_is_better=False,
               description="root mean squared error over RGB",
               derive_from="mse", derive=f"{_K}.fidelity:rmse_of_mse",
               cost=0.2),
    MetricSpec("psnr", f"{_K}.fidelity:psnr", params={"cap_db": 100.0},
               description="PSNR over RGB in dB, 100 dB for identical frames (GifLab's cap)",
               derive_from="mse", derive=f"{_K}.fidelity:psnr_of_mse",
               cost=0.25),
    MetricSpec("ssim", f"{_K}.structural:ssim", params={"gaussian": False},
               description="SSIM on OpenCV luma, scikit-image defaults (GifLab's definition)",
               needs="frames of at least 7x7 pixels (11x11 with gaussian=True)",
               cost=1),
    MetricSpec("ms_ssim", f"{_K}.structural:ms_ssim",
               description="MS-SSIM (Wang, Simoncelli & Bovik 2003), 5 scales",
               needs="frames of at least 161x161 pixels (an 11x11 window at the fifth scale)",
               cost=7),
    MetricSpec("fsim", f"{_K}.perceptual:fsim", params={"chroma": False},
               description="FSIM (Zhang et al. 2011); chroma=True gives FSIMc",
               needs="frames of at least 3x3 pixels after its downsampling",
               cost=100),
    MetricSpec("gmsd", f"{_K}.perceptual:gmsd", higher_is_better=False,
               description="GMSD (Xue et al. 2014)",
               needs="frames of at least 5x5 pixels (3x3 after halving)",
               cost=2.3),
    MetricSpec("chist", f"{_K}.texture:chist", params={"bins": 32},
               description="32-bin colour histogram correlation",
               cost=0.75),
    MetricSpec("edge_similarity", f"{_K}.texture:edge_similarity",
               params={"low_threshold": 50, "high_threshold": 150},
               description="Canny 50/150 edge maps, Jaccard",
               cost=2.4),
    MetricSpec("texture_similarity", f"{_K}.texture:texture_similarity",
               description="LBP histogram similarity",
               cost=2.7),
    MetricSpec("sharpness_similarity", f"{_K}.texture:sharpness_similarity",
               description="Laplacian variance ratio",
               cost=0.6),
    MetricSpec("temporal_consistency", f"{_K}.temporal:temporal_consistency",
               outputs=("temporal_consistency_original", "temporal_consistency_compressed"),
               temporal=True, higher_is_better=False,
               pair_summary=f"{_K}.temporal:temporal_consistency_summary",
               description="inter-frame change of each stream; GifLab's consistency and delta",
               needs="at least two frames (each value compares a frame with the one before)",
               cost=0.5),
    MetricSpec("deltae", f"{_K}.colour:deltae",
               outputs=("deltae_mean", "deltae_p95", "deltae_max", "deltae_pct_gt1",
                        "deltae_pct_gt2", "deltae_pct_gt3", "deltae_pct_gt5",
                        "color_patch_count"),
               higher_is_better=False, pair_summary=f"{_K}.colour:deltae_summary",
               description="CIEDE2000 colour difference per pixel",
               cost=3.5),
    MetricSpec("banding", f"{_K}.colour:banding",
               outputs=("banding_score_mean", "banding_score_p95", "banding_patch_count",
                        "gradient_region_count"),
               higher_is_better=False, pair_summary=f"{_K}.colour:banding_summary",
               description="GifLab's gradient banding score",
               needs="smooth gradient regions in the original (GifLab's detector found none)",
               cost=5),
]  # fmt: skip

_EXTRA = [
    MetricSpec("psnr_normalized", f"{_K}.fidelity:psnr_normalized", params={"max_db": 50.0},
               description="GifLab's normalised PSNR, dB/50 clamped to [0, 1] (GifLab's 'psnr')",
               derive_from="mse", derive=f"{_K}.fidelity:psnr_normalized_of_mse",
               cost=0.25),
    # Opt-in: its cost is past the limit set for the default set (benchmarks/README.md); left
    # out of it until decided.
    MetricSpec("ssimulacra2", f"{_K}.ssimulacra2:ssimulacra2",
               description="SSIMULACRA 2.1 (libjxl tools/ssimulacra2.cc), 100 for identical "
                           "frames, lower is worse",
               needs="frames of at least 8x8 pixels (libjxl's smallest scale)",
               cost=12),
    # Opt-in and external: Debian's tool, one process per frame.
    MetricSpec("butteraugli", f"{_K}.butteraugli:butteraugli", higher_is_better=False,
               description="Butteraugli distance from Debian's butteraugli tool (on PATH), "
                           "0 for identical frames",
               needs="frames of at least 8x8 pixels with one side over 10 (the tool's limits)",
               version="debian-0~20170116", cost=250),
]  # fmt: skip


def register_metric(
    name: str | MetricSpec,
    kernel: Kernel | str | None = None,
    *,
    outputs: Iterable[str] = (),
    params: Mapping[str, Any] | None = None,
    temporal: bool = False,
    higher_is_better: bool | Mapping[str, bool] = True,
    version: str = "1",
    description: str = "",
    replace: bool = False,
) -> MetricSpec:
    """Register a metric by name; ``kernel`` follows the contract in :mod:`giflab_dask.kernels`.

    Bump ``version`` when the kernel's code changes: it is part of every stored result's key.
    """
    if isinstance(name, MetricSpec):
        spec = name
    else:
        if kernel is None:
            raise GiflabError(f"register_metric({name!r}) needs a kernel function")
        spec = MetricSpec(
            name,
            kernel,
            outputs=tuple(outputs),
            params=dict(params or {}),
            temporal=temporal,
            higher_is_better=higher_is_better,
            version=version,
            description=description or (getattr(kernel, "__doc__", "") or "").strip()[:200],
        )
    if spec.name in _REGISTRY and not replace:
        raise GiflabError(f"metric {spec.name!r} is already registered; pass replace=True")
    _REGISTRY[spec.name] = spec
    return spec


def available_metrics() -> list[str]:
    return sorted(_REGISTRY)


def get_metric(name: str) -> MetricSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r} (available: {', '.join(available_metrics())})"
        ) from None


def resolve_metrics(metrics: Iterable[str | MetricSpec] | str | None) -> list[MetricSpec]:
    """Specs for names (or a comma-separated string); None means :data:`DEFAULT_METRICS`."""
    if metrics is None:
        metrics = DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    specs = [m if isinstance(m, MetricSpec) else get_metric(m) for m in metrics]
    if not specs:
        raise GiflabError(
            "no metric names given (name some, such as 'ssim,psnr', or None for the default set)"
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise GiflabError(f"metric listed twice: {names}")
    return specs


# -- wrappers ---------------------------------------------------------------------------------


def _as_2d(values: np.ndarray, t: int, k: int, name: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.shape == (t,) and k == 1:
        return out[:, None]
    if out.shape != (t, k):
        raise GiflabError(
            f"metric {name!r} returned shape {out.shape} for {t} frames; "
            f"expected ({t},) or ({t}, {k})"
        )
    return out


def _pair_block(
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    spec: MetricSpec,
    kernel: Kernel,
    single: bool,
    runtime: Mapping[str, Any],
) -> np.ndarray:
    t = original.shape[0]
    values = kernel(original, compressed, **spec.params, **runtime)
    out = _as_2d(values, t, len(spec.outputs), spec.name)
    return out[:, 0] if single else out


def _temporal_block(
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    spec: MetricSpec,
    kernel: Kernel,
    n_blocks: int,
    single: bool,
    runtime: Mapping[str, Any],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    # Blocks arrive overlapped by one frame on each inner side; keep the leading frame only.
    k = block_id[0] if block_id is not None else 0
    if k < n_blocks - 1:
        original, compressed = original[:-1], compressed[:-1]
    out = _temporal_values(original, compressed, spec, kernel, runtime, first=k == 0)
    return out[:, 0] if single else out


def _temporal_values(
    original: np.ndarray,
    compressed: np.ndarray,
    spec: MetricSpec,
    kernel: Kernel,
    runtime: Mapping[str, Any],
    *,
    first: bool,
) -> np.ndarray:
    """``(t, k)`` values of a temporal kernel for a block whose first frame is the previous
    frame of the block's first measured frame, or (``first``) the GIF's first frame itself."""
    outputs = len(spec.outputs)
    if not first:
        t = original.shape[0] - 1
        values = kernel(original, compressed, **spec.params, **runtime)
        return _as_2d(values, t, outputs, spec.name)
    # The first frame of the GIF has no predecessor: NaN (missing), never a made-up value.
    t = original.shape[0]
    out = np.full((t, outputs), np.nan)
    if t > 1:
        values = kernel(original, compressed, **spec.params, **runtime)
        out[1:] = _as_2d(values, t - 1, outputs, spec.name)
    return out


@dataclass(frozen=True)
class BoundMetric:
    """A metric as a task runs it: the spec, its kernel imported, and its runtime options
    (read on the client, see :func:`_runtime_options`)."""

    spec: MetricSpec
    kernel: Kernel
    runtime: Mapping[str, Any]

    @classmethod
    def of(cls, spec: MetricSpec) -> BoundMetric:
        kernel = spec.resolve_kernel()
        return cls(spec, kernel, _runtime_options(kernel))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        from dask.base import tokenize

        return ("giflab-bound-metric", tokenize(self.spec), sorted(self.runtime.items()))


def measure_block(
    metrics: Sequence[BoundMetric],
    original: np.ndarray,
    compressed: np.ndarray,
    *,
    previous: bool,
    meter: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    check: Callable[[], None] | None = None,
) -> dict[str, np.ndarray | str]:
    """Every metric's ``(t, k)`` float64 values on one aligned block of frames.

    ``previous``: the block starts with the frame before the first one measured (temporal
    kernels compare with it; the others skip it); without it the block starts at the GIF's
    first frame, where temporal kernels give NaN. A kernel that raises gives the text
    ``"<exception type>: <message>"`` instead of values, so one metric's failure never costs
    the others theirs. ``meter(label)`` times each kernel (label ``<metric>-frame``);
    ``check()`` runs before each kernel, and what it raises stops the block (a time limit).
    """
    from giflab_dask.kernels._frames import shared_conversions

    lead = 1 if previous else 0
    out: dict[str, np.ndarray | str] = {}
    distinct = None
    if any(not m.spec.temporal for m in metrics):
        distinct = _distinct_pairs(original[lead:], compressed[lead:])
    with shared_conversions():  # each frame's luma (etc.) once for all the kernels
        for metric in metrics:
            if check is not None:
                check()
            _measure_one(metric, original, compressed, lead, meter, out, distinct)
    return out


class _Distinct(NamedTuple):
    """A block's frame pairs without their repeats: ``original``/``compressed`` hold the first
    pair of each run of identical consecutive pairs, ``run[i]`` is frame ``i``'s run."""

    original: np.ndarray
    compressed: np.ndarray
    run: np.ndarray


def _distinct_pairs(original: np.ndarray, compressed: np.ndarray) -> _Distinct | None:
    """The block's distinct consecutive frame pairs, or None when no pair repeats.

    A frame held on screen in both GIFs (a static stretch, or the compressed frame a time
    alignment shows beside several original frames) gives the same pair again; a pair kernel's
    value depends on its pair alone (the kernel contract), so it is measured once.
    """
    t = len(original)
    if t < 2:
        return None
    repeat = np.fromiter(
        (
            np.array_equal(original[i], original[i - 1])
            and np.array_equal(compressed[i], compressed[i - 1])
            for i in range(1, t)
        ),
        dtype=bool,
        count=t - 1,
    )
    if not repeat.any():
        return None
    new = np.concatenate([[True], ~repeat])
    first = np.flatnonzero(new)
    return _Distinct(original[first], compressed[first], np.cumsum(new) - 1)


def _measure_one(
    metric: BoundMetric,
    original: np.ndarray,
    compressed: np.ndarray,
    lead: int,
    meter: Callable[[str], contextlib.AbstractContextManager[Any]] | None,
    out: dict[str, np.ndarray | str],
    distinct: _Distinct | None = None,
) -> None:
    """One metric of :func:`measure_block` into ``out``: values, or its error text."""
    spec, kernel = metric.spec, metric.kernel
    timer = meter(f"{spec.name}-frame") if meter is not None else contextlib.nullcontext()
    try:
        with timer:
            if spec.temporal:
                values = _temporal_values(
                    original, compressed, spec, kernel, metric.runtime, first=lead == 0
                )
            elif distinct is not None:
                values = _pair_block(
                    distinct.original, distinct.compressed, spec=spec, kernel=kernel,
                    single=False, runtime=metric.runtime,
                )[distinct.run]  # fmt: skip
            else:
                values = _pair_block(
                    original[lead:], compressed[lead:], spec=spec, kernel=kernel,
                    single=False, runtime=metric.runtime,
                )  # fmt: skip
    except Exception as exc:
        out[spec.name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        out[spec.name] = values


def per_frame(spec: MetricSpec, pair: AlignedPair) -> dict[str, da.Array]:
    """Lazy per-frame vectors ``(T,)`` float64, one per output of ``spec``."""
    import dask.array as da
    from dask.base import tokenize

    kernel = spec.resolve_kernel()
    o, c = pair.original, pair.compressed
    time_chunks = o.chunks[0]
    k = len(spec.outputs)
    token = tokenize(spec, o.name, c.name)
    single = k == 1
    inputs: list[Any] = []
    if spec.temporal:
        depth = {0: 1, 1: 0, 2: 0, 3: 0}
        o = da.overlap.overlap(o, depth=depth, boundary="none")
        c = da.overlap.overlap(c, depth=depth, boundary="none")
        # Each task needs its block's position (first block: no previous frame).
        positions = da.from_array(np.arange(len(time_chunks)), chunks=1, name=f"block-ids-{token}")
        inputs = [positions, "t"]
        func: Callable[..., np.ndarray] = _temporal_block
        extra: dict[str, Any] = {"n_blocks": len(time_chunks)}
    else:
        func, extra = _pair_block, {}
    # blockwise with the frame axes contracted and concatenate=False: each task gets its one
    # (t, H, W, 3) block as is; map_blocks(drop_axis=...) would copy every block to "concatenate"
    # the single block along the dropped axes.
    values = da.blockwise(
        _unwrap(func),
        "t" if single else "tk",
        o,
        "tyxc",
        c,
        "tyxc",
        *inputs,
        dtype=np.float64,
        meta=np.empty((0,) if single else (0, 0), dtype=np.float64),
        new_axes=None if single else {"k": k},
        adjust_chunks={"t": time_chunks},
        concatenate=False,
        align_arrays=False,
        name=f"{spec.name}-frame-{token}",
        spec=spec,
        kernel=kernel,
        single=single,
        runtime=_runtime_options(kernel),
        **extra,
    )
    if single:
        return {spec.outputs[0]: values}
    return {name: values[:, j] for j, name in enumerate(spec.outputs)}


_BACKENDS = {"auto": "auto", "on": "numba", True: "numba", "off": "numpy", False: "numpy"}


def _runtime_options(kernel: Kernel) -> dict[str, Any]:
    """Keyword arguments that change how a kernel runs, never its values (so they are not in
    the spec, whose parameters key the stored results). Read here, on the client, because
    config set on the client does not reach cluster workers."""
    import inspect

    from giflab_dask import config

    try:
        parameters = inspect.signature(kernel).parameters
    except (TypeError, ValueError):
        return {}
    options: dict[str, Any] = {}
    if "backend" in parameters:
        setting = config.get("kernels.numba")
        if setting not in _BACKENDS:
            raise GiflabError(f"giflab.kernels.numba must be auto, on or off; got {setting!r}")
        options["backend"] = _BACKENDS[setting]
    return options


def _unwrap(func: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Adapt a block function to blockwise's nested lists of one block per contracted axis."""

    def unwrapped(original: Any, compressed: Any, *position: Any, **kwargs: Any) -> np.ndarray:
        while isinstance(original, list):
            (original,) = original
        while isinstance(compressed, list):
            (compressed,) = compressed
        if position:
            kwargs["block_id"] = (int(position[0][0]),)
        return func(original, compressed, **kwargs)

    unwrapped.__name__ = func.__name__
    return unwrapped


for _spec in (*_BUILTIN, *_EXTRA):
    register_metric(_spec)

#: The metric set computed when none is named: GifLab's frame-level set.
DEFAULT_METRICS: tuple[str, ...] = tuple(s.name for s in _BUILTIN)
