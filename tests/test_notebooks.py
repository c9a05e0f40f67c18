"""The notebooks in notebooks/ run from top to bottom (each ends by asserting what it showed)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from .conftest import REQUIRE_TOOLS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))

#: Packages every notebook needs, and those some need on top.
NEEDS_ALL = ("nbformat", "nbclient", "ipykernel", "matplotlib", "psutil")
NEEDS = {"02-batch-on-a-cluster.ipynb": ("distributed", "bokeh", "ipywidgets")}


def _need_modules(*modules: str, why: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        message = f"{why} needs {', '.join(missing)} (pip install 'giflab-dask[test]')"
        if REQUIRE_TOOLS:
            pytest.fail(message + "; GIFLAB_REQUIRE_TOOLS=1 forbids skipping")
        pytest.skip(message)


def test_the_four_notebooks_are_there() -> None:
    assert [p.name for p in PATHS] == [
        "01-quickstart.ipynb",
        "02-batch-on-a-cluster.ipynb",
        "03-custom-metric.ipynb",
        "04-large-gifs.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    _need_modules("nbformat", why="reading notebooks")
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "assert" in code[-1].source, "a notebook ends by asserting what it showed"
    assert "shutil.rmtree(workdir" in code[-1].source, "and by removing its temporary folder"
    assert "giflab.cache-dir" in "".join(c.source for c in code), "use a temporary cache"
    remote = re.findall(r"https?://(?!127\.0\.0\.1|localhost)\S+", "".join(c.source for c in code))
    assert not remote, f"notebooks use no network: {remote}"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_modules(*NEEDS_ALL, *NEEDS.get(path.name, ()), why=path.name)
    import nbclient
    import nbformat

    temp = tmp_path / "tmp"  # the kernel's temporary folders: checked empty of ours below
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [
        output
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    assert not list(temp.glob("giflab-*")), "the notebook left temporary folders behind"
