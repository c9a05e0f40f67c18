"""environment.yml keeps pyproject.toml's set (core and every extra), so neither drifts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: pip names that conda-forge spells differently
CONDA_NAMES = {"opencv-python-headless": "py-opencv"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!;~]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_has_every_pyproject_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra if not r.startswith("giflab-dask")}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    have = set()
    for entry in env["dependencies"]:
        for item in entry["pip"] if isinstance(entry, dict) else [entry]:
            have.add(_name(item))
    missing = {CONDA_NAMES.get(n, n) for n in wanted} - have
    assert not missing, f"environment.yml lacks {sorted(missing)}"


def test_plots_extra_is_what_plots_and_report_need() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert [_name(r) for r in extras["plots"]] == ["matplotlib"]
    assert "giflab-dask[plots]" in extras["notebook"]
