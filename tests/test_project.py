"""The project's own promises: README commands are what CI runs, README is generated, pins are in place."""
import configparser
import re
import subprocess
import sys

from conftest import ROOT


def readme_block(section: str, lang: str = "sh") -> str:
    "The first `lang` code block under the README heading `## {section}`."
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    part = re.split(r"^## ", text, flags=re.M)
    body = next(p for p in part if p.startswith(section + "\n"))
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)[0].strip()


def test_ci_runs_the_readme_commands():
    setup, test = readme_block("Set up"), readme_block("Test")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for cmd in setup.splitlines() + test.splitlines():
        assert cmd in ci, f"README command not run verbatim by .ci/run: {cmd!r}"
    assert ci[-1] == test.splitlines()[-1], "CI must end with the README's test command (pytest)"


def test_readme_main_command_is_the_demo():
    assert readme_block("Main command") == "medinterp demo"     # tests/test_cli.py runs it on a small --n


def test_readme_is_rendered_from_index():
    res = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_settings_pins():
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    reqs = cfg["DEFAULT"]["requirements"].split()
    for pin in ("nbdev>=2.4,<3", "fastcore<2", "execnb<0.2"):
        assert pin in reqs, pin
    torch_req = [r for r in reqs if r.startswith("torch") and not r.startswith("torchvision")]
    assert torch_req == ["torch>=2.0"], "keep torch loose in settings.ini; the README pins the wheel"
    assert {"pytest>=7.4", "hypothesis>=6.80"} <= set(cfg["DEFAULT"]["dev_requirements"].split())


def _executed(nb) -> bool:
    "The index and the tutorials are committed executed; library notebooks without outputs."
    return nb.name == "index.ipynb" or nb.parent.name == "tutorials"


def test_library_notebooks_carry_no_outputs():
    import json
    for nb in (ROOT / "nbs").rglob("*.ipynb"):
        if _executed(nb): continue
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{nb.name}: cells {dirty} carry outputs (run nbdev_clean)"


def test_tutorials_are_committed_executed():
    "Written by `python .ci/execute_tutorials.py`: outputs present, portable, cleaned, each notebook <= 3 MB."
    import json
    flags = re.compile(r"^#\|\s*(slow|weights|data)\s*$", re.M)
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if not _executed(nb): continue
        text = nb.read_text(encoding="utf-8")
        assert len(text.encode("utf-8")) <= 3_000_000, f"{nb.name} is over 3 MB"
        code = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
        runnable = [c for c in code if not flags.search("".join(c["source"]))]
        with_out = [c for c in runnable if c.get("outputs")]
        assert len(with_out) >= max(1, len(runnable) // 3), \
            f"{nb.name}: {len(with_out)} of {len(runnable)} cells carry outputs; run python .ci/execute_tutorials.py"
        assert not any(c.get("execution_count") for c in code), f"{nb.name}: execution counts (run nbdev_clean)"
        assert str(ROOT) not in text and "/tmp/" not in text, f"{nb.name}: outputs hold a machine path"
        assert "application/vnd.jupyter.widget-view+json" not in text, f"{nb.name}: a widget view without its state"


def _claims():
    from conftest import load_script
    return load_script(".ci/claims.py")


def _notebook(tmp_path, prose: str, printed: str, code: str = "print(x)"):
    import nbformat
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(prose), cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_claims_check_catches_prose_that_contradicts_the_output(tmp_path):
    "The check CI runs on freshly executed tutorials: a number or transition in prose must be computed or printed."
    claims = _claims()
    prose = "Correlation entropy is 0.72 for raw dimensions; opacity is first organised at b0→b1 (83 % vs 20 %)."
    bad = claims.unsupported(_notebook(tmp_path, prose, "raw 0.810 SAE 0.724\nopacity: b3→b4 (83% vs 20%)"))
    assert any("'0.72'" in b for b in bad) and any("b0→b1" in b for b in bad), bad
    assert not any("83%" in b or "20%" in b for b in bad), bad
    assert claims.unsupported(_notebook(tmp_path, prose, "raw 0.72 SAE 0.81\nopacity: b0→b1 (83 % vs 20 %)")) == []
    cited = "MedSAE reports 2.38 vs 2.25 ([paper](https://arxiv.org/abs/2501.00000))."
    assert claims.unsupported(_notebook(tmp_path, cited, "")) == []
    assert claims.unsupported(_notebook(tmp_path, "We set γ = 0.05.", "", code="gamma = 0.05")) == []
    assert claims.unsupported(_notebook(tmp_path, "<!-- claims: example run -->\nIt took 14.5 s.", "")) == []


def test_committed_tutorials_quote_no_uncomputed_result():
    claims = _claims()
    constants = claims._library_constants()
    bad = [line for nb in claims.notebooks() for line in claims.unsupported(nb, constants)]
    assert not bad, "\n".join(bad)


def test_library_notebooks_read_like_a_course():
    "`.ci/style_stats.py --check`: short export cells, one public definition each with a sentence before it, short functions, each helper once."
    res = subprocess.run([sys.executable, str(ROOT / ".ci" / "style_stats.py"), "--list", "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
