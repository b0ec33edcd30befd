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


def test_notebooks_carry_no_outputs():
    import json
    for nb in (ROOT / "nbs").rglob("*.ipynb"):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
        assert not dirty, f"{nb.name}: cells {dirty} carry outputs (run nbdev_clean)"
