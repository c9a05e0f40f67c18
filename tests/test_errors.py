"""One exception tree: every public error and warning class is defined in giflab_dask.errors."""

from __future__ import annotations

import importlib
import pkgutil

import cloudpickle
import pytest

import giflab_dask
from giflab_dask import errors


def _modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(giflab_dask.__path__, "giflab_dask.")
        if m.name != "giflab_dask.__main__"
    ]


def test_every_public_exception_class_lives_in_errors() -> None:
    strays = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, Exception | Warning)
                and value.__module__ == name
                and name != errors.__name__
                and not attr.startswith("_")
            ):
                strays.append(f"{name}.{attr}")
    assert not strays, f"define these in giflab_dask/errors.py and re-export them: {strays}"


def test_errors_all_lists_every_class() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("giflab_dask.align", "AlignmentError"),
        ("giflab_dask.inputs", "BatchInputError"),
        ("giflab_dask.metrics", "UnknownMetricError"),
        ("giflab_dask.sampling", "SamplingError"),
    ],
)
def test_moved_classes_still_import_from_their_old_module(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert cls is getattr(errors, name)
    assert issubclass(cls, errors.GiflabError)
    assert name in importlib.import_module(module).__all__


def test_pair_time_limit_is_a_timeout() -> None:
    exc = errors.PairTimeLimitError("a.gif vs b.gif: measuring took more than 5 s")
    assert isinstance(exc, TimeoutError) and isinstance(exc, ValueError)
    assert str(exc) == "a.gif vs b.gif: measuring took more than 5 s"
    # Errors cross process boundaries on a cluster; tblib (distributed) rebuilds them with
    # ``cls.__new__(cls)``, which a ValueError-first mix-in with OSError refuses.
    again = cloudpickle.loads(cloudpickle.dumps(exc))
    assert type(again) is errors.PairTimeLimitError and str(again) == str(exc)
    assert isinstance(errors.PairTimeLimitError.__new__(errors.PairTimeLimitError), TimeoutError)
