"""The lint gates as tests, so CI (which runs only pytest) enforces them: ruff's checks and
formatting on the package, tests, benchmarks and notebooks (complexity limits included: C901,
PLR0915), mypy on the package (configured in pyproject.toml), and the ``py.typed`` marker."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = ["giflab_dask", "tests", "benchmarks", "notebooks"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


def test_ruff_check() -> None:
    _needs("ruff")
    done = _run("ruff", "check", "--no-cache", *PATHS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    _needs("ruff")
    done = _run("ruff", "format", "--check", "--no-cache", *PATHS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_complexity_limits_are_configured() -> None:
    lint = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"C901", "PLR0915"} <= set(lint["select"])
    assert lint["mccabe"]["max-complexity"] == 15
    assert lint["pylint"]["max-statements"] == 50


def test_mypy() -> None:
    _needs("mypy")
    done = _run("mypy")  # files and options: [tool.mypy]
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_is_typed() -> None:
    assert (REPO / "giflab_dask" / "py.typed").is_file()
