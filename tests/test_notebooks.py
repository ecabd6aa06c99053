"""Every notebook in notebooks/: its jupytext pair is in sync, and it runs without a cell error.

The `.py` (jupytext percent format) is the source of truth and the `.ipynb` is its paired copy,
checked in without outputs. The run executes the `.py` with nbclient on a kernel started from
this test's own Python, with the session's small trained bundle in ESCALATION_BUNDLE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import NotebookDifference, compare_notebooks

from tests.conftest import REPOSITORY, TrainedBundle

NOTEBOOK_DIR = REPOSITORY / "notebooks"
NOTEBOOK_SOURCES = sorted(NOTEBOOK_DIR.glob("*.py"))
SOURCE_FORMAT = "py:percent"
KERNEL_NAME = "escalation-test-python"

# Conversations a notebook scores when it samples. Enough for every outcome to occur on the
# small test bundle, and few enough to keep each run short.
NOTEBOOK_SAMPLE = "60"
CELL_TIMEOUT_SECONDS = 600
SHOW_EXECUTABLE = "import sys\nprint(sys.executable, end='')"


def _notebook_id(path: Path) -> str:
    return path.stem


def test_notebooks_present() -> None:
    names = {path.stem for path in NOTEBOOK_SOURCES}
    assert {"01_data_exploration", "02_error_analysis", "03_threshold_tuning"} <= names


def test_every_ipynb_has_source() -> None:
    orphans = [path.name for path in NOTEBOOK_DIR.glob("*.ipynb")
               if not path.with_suffix(".py").is_file()]
    assert not orphans, f"notebooks without a jupytext .py source: {orphans}"


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=_notebook_id)
def test_notebook_pair_in_sync(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing; run `jupytext --sync {source.name}`"

    try:
        compare_notebooks(nbformat.read(paired, as_version=4), jupytext.read(source),
                          fmt=SOURCE_FORMAT)
    except NotebookDifference as difference:
        pytest.fail(f"{paired.name} differs from {source.name}; run `jupytext --sync "
                    f"{source.name}` in notebooks/:\n{difference}")


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=_notebook_id)
def test_notebook_pair_declared(source: Path) -> None:
    formats = jupytext.read(source).metadata.get("jupytext", {}).get("formats")
    assert formats == f"ipynb,{SOURCE_FORMAT}"


@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=_notebook_id)
def test_notebook_ipynb_outputs_stripped(source: Path) -> None:
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(not cell.outputs for cell in code_cells)
    assert all(cell.execution_count is None for cell in code_cells)


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a kernel spec that starts ipykernel with this test's Python, the project's venv."""
    folder = tmp_path_factory.mktemp("kernels")
    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "escalation-scoring tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOK_SOURCES, ids=_notebook_id)
def test_notebook_runs(
    source: Path,
    trained_bundle: TrainedBundle,
    kernel_spec_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # The kernel inherits this environment, with the offline switches of conftest.py.
    monkeypatch.setenv("ESCALATION_BUNDLE", str(trained_bundle.path))
    monkeypatch.setenv("ESCALATION_NOTEBOOK_SAMPLE", NOTEBOOK_SAMPLE)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    notebook = jupytext.read(source)
    notebook.cells.append(nbformat.v4.new_code_cell(SHOW_EXECUTABLE))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)], ensure_native_kernel=False)
    client = NotebookClient(
        notebook,
        km=KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs),
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()

    outputs = notebook.cells[-1].outputs
    assert [output.get("text") for output in outputs] == [sys.executable]
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert not errors
