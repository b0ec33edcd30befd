"""Every notebook in nbs/ runs top to bottom, as `nbdev_test` would run it, one pytest case each.

Cells carrying a test flag from settings.ini (`#| slow`, `#| weights`, `#| data`) are skipped unless the flag is
in MEDINTERP_TEST_FLAGS.
"""
from pathlib import Path

import nbdev.test as nbtest  # imported as a module so pytest does not collect nbdev's own `test_nb`
import pytest

from conftest import ROOT, forced_flags, tst_flags

NBS_DIR = ROOT / "nbs"
NOTEBOOKS = sorted(
    p for p in NBS_DIR.rglob("*.ipynb")
    if not any(part.startswith((".", "_")) for part in p.relative_to(NBS_DIR).parts)
)


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"index.ipynb", "00_core.ipynb"} <= names, names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS_DIR)))
def test_notebook_runs(notebook: Path):
    ok, seconds = nbtest.test_nb(notebook, skip_flags=tst_flags(), force_flags=forced_flags(), basepath=ROOT)
    assert ok, f"{notebook.relative_to(ROOT)} failed after {seconds:.1f}s (the traceback is in the captured stderr)"
