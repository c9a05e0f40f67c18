"""What a validation measures and where it keeps things: one options value for the public
functions (:func:`~giflab_dask.pipeline.plan_batch`, ``validate_batch``, ``validate_pair``),
built from their keywords and checked before any work."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from giflab_dask.align import AlignOptions
from giflab_dask.budget import max_pair_seconds, memory_budget
from giflab_dask.errors import GiflabError
from giflab_dask.metrics import MetricSpec, resolve_metrics
from giflab_dask.resultstore import ResultStore, open_result_store
from giflab_dask.sampling import SampleSpec
from giflab_dask.verdicts import load_profile

if TYPE_CHECKING:
    from giflab_dask.framestore import FrameStore

__all__ = ["ValidateOptions", "resolve_sample"]


def resolve_sample(sample: SampleSpec | int | None) -> SampleSpec | None:
    """``sample`` as given to the public functions: a spec, N frames, or None (the config)."""
    if isinstance(sample, SampleSpec):
        return sample
    if sample is None:
        return SampleSpec.from_config()
    return SampleSpec.from_config(n=int(sample))


@dataclass(frozen=True)
class ValidateOptions:
    """What a validation measures and where it keeps its results: the one value behind the
    keyword arguments of :func:`~giflab_dask.pipeline.plan_batch`,
    :func:`~giflab_dask.pipeline.validate_batch` and :func:`~giflab_dask.pipeline.validate_pair`
    (each also takes it as ``options=``).

    Build it with :meth:`of` (the same keywords, defaults from ``giflab.*``), which checks
    them eagerly: a bad profile, limit, metric or sample fails before any work.
    """

    metrics: tuple[MetricSpec, ...]
    align: AlignOptions
    profile: str | Mapping[str, Any] | None = None
    sample: SampleSpec | None = None
    #: the frame store (the decode cache, used whatever ``use_cache`` says); None: the default
    store: FrameStore | None = None
    #: the result store; None: the default
    results: ResultStore | None = None
    #: look nodes up and keep them; False: a scratch store of this run's own
    use_cache: bool = True
    #: compute every node again (and overwrite it)
    refresh: bool = False

    @classmethod
    def of(
        cls,
        *,
        metrics: Iterable[str | MetricSpec] | str | None = None,
        profile: str | Mapping[str, Any] | None = None,
        align_options: AlignOptions | None = None,
        store: FrameStore | None = None,
        results: ResultStore | None = None,
        use_cache: bool = True,
        refresh: bool = False,
        sample: SampleSpec | int | None = None,
    ) -> ValidateOptions:
        """The options of the public functions' keywords; ``sample`` may be N (a uniform
        sample of N frames), None meaning ``giflab.sampling.n``."""
        load_profile(profile)  # eager: a bad profile fails before any work
        memory_budget(), max_pair_seconds()  # eager, too (read again when planning)
        specs = tuple(resolve_metrics(metrics))
        sample_spec = resolve_sample(sample)
        options = align_options or AlignOptions.from_config()
        return cls(
            specs, options, profile, sample_spec, store, results, use_cache, refresh
        )  # fmt: skip

    @classmethod
    def given(cls, options: ValidateOptions | None, **keywords: Any) -> ValidateOptions:
        """``options`` if given, else :meth:`of` the keywords; both at once is an error (one
        would silently lose)."""
        if options is None:
            return cls.of(**keywords)
        passed = sorted(k for k, v in keywords.items() if v is not _KEYWORD_DEFAULTS[k])
        if passed:
            raise GiflabError(
                f"pass either options= or keywords, not both (got options= and {passed}); "
                "use dataclasses.replace(options, ...) to change a field"
            )
        return options

    @property
    def looks_up(self) -> bool:
        """Whether stored nodes are used (not for a scratch store or a refresh)."""
        return self.use_cache and not self.refresh

    def result_store(self) -> ResultStore:
        """The store this run's nodes go to: the given or default one, or with ``use_cache``
        off a scratch store of its own (per-frame vectors are still read back from a store),
        removed when the last result that reads from it is gone."""
        if not self.use_cache:
            return _scratch_store()
        return self.results or open_result_store()


#: What the public functions' keywords default to (a keyword left at it is not "given").
_KEYWORD_DEFAULTS: dict[str, Any] = {
    "metrics": None, "profile": None, "align_options": None, "store": None, "results": None,
    "use_cache": True, "refresh": False, "sample": None,
}  # fmt: skip


def _scratch_store() -> ResultStore:
    """A result store in a fresh temporary folder, deleted with the store object."""
    import shutil
    import tempfile
    import weakref

    root = tempfile.mkdtemp(prefix="giflab-nocache-")
    store = ResultStore(root)
    weakref.finalize(store, shutil.rmtree, root, True)
    return store
