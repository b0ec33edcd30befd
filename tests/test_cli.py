"""The `medinterp` command: the demo end to end on a small --n (its printed findings are true of its study and its
report), resumption, and one-line errors for wrong paths, formats, studies and an unreachable hub."""
import re
import json
from html import escape
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from medinterp.cli import main
from medinterp.sweep import finding_lines
from medinterp.study import Study

CALL = "import sys; from medinterp.cli import main; sys.exit(main(sys.argv[1:]))"


def medinterp(*args, env=None):
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", CALL, *map(str, args)], capture_output=True, text=True, env=e, timeout=1200)


def test_console_script_is_declared():
    eps = [ep for ep in entry_points(group="console_scripts") if ep.name == "medinterp"]
    assert eps and eps[0].value == "medinterp.cli:main"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "demo"
    r = medinterp("--quiet", "demo", "--out", out, "--n", 150, "--model-images", 200, "--model-steps", 40)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def test_demo_summary_is_true_of_its_study(demo_run):
    out, stdout = demo_run
    study = Study.open(out)
    lines = stdout.splitlines()
    assert lines[0].startswith(f"study {out}: 150 images, ")
    assert lines[1:1 + len(study.audit().lines())] == study.audit().lines()   # the data audit comes first
    table = study.findings()
    assert set(table["label"]) == set(study.audit().tested)
    for line in finding_lines(table): assert line in lines, (line, stdout)
    for s in study.sweep.summaries():                 # the transition summaries and the depth profile are printed
        if s["direction"] == "10": assert any(l.startswith(s["text"]) for l in lines), s
    assert any(l.startswith("depth profile") for l in lines)
    assert json.loads((out / "findings.json").read_text()) == json.loads(table.to_json(orient="records"))
    labels = study.store.labels
    pairs = [f"{a}→{b}" for a, b in study.sweep.pairs]
    for r in table.itertuples():                      # every number recomputed from the concept's members
        if not r.pair: continue
        c = study.sweep.concepts(pairs.index(r.pair), "10")[r.concept]
        y = labels[r.label].to_numpy()[study.sweep.rows[c.members]]
        assert c.size == r.size and np.isclose(np.nanmean(y), r.purity) and not c.flags and r.stability == c.stability
        assert np.isclose(np.nanmean(labels[r.label].to_numpy()[study.sweep.rows]), r.overall)
        if r.organised: assert r.purity >= 0.8 and r.q < 0.05


def test_demo_writes_a_complete_study_and_report(demo_run):
    out, stdout = demo_run
    study = Study.open(out)
    assert study.status()["present"].all(), study.status()
    html = study.report_path.read_text(encoding="utf-8")
    for a, b in study.sweep.pairs: assert a in html and b in html
    assert re.search(rf"report: {re.escape(str(study.report_path))} \(\d+\.\d MB, \d+ of \d+ concept and latent articles drawn\)", stdout)


def test_rerun_reuses_finished_stages(demo_run):
    out, _ = demo_run
    study = Study.open(out)
    first = study.sweep.record["pairs"][0]["dir"]
    stamp = (study.rdx_dir / first / "result.json").stat().st_mtime_ns
    sae_stamp = (study.sae_dir / study.saes[0] / "sae.json").stat().st_mtime_ns
    r = medinterp("--quiet", "demo", "--out", out, "--n", 150, "--model-images", 200, "--model-steps", 40)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (study.rdx_dir / first / "result.json").stat().st_mtime_ns == stamp
    assert (study.sae_dir / study.saes[0] / "sae.json").stat().st_mtime_ns == sae_stamp


def test_user_errors_are_one_line(tmp_path, capsys):
    from medinterp.phantoms import make_phantoms
    imgs = make_phantoms(4, size=64, seed=0, out_dir=tmp_path / "imgs")
    cases = [
        (["run", "--backbone", "biomedclip", "--images", tmp_path / "missing", "--out", tmp_path / "a"], "image folder"),
        (["run", "--backbone", "biomedclip", "--images", imgs.root, "--metadata", imgs.root / "metadata.csv",
          "--format", "bogus", "--out", tmp_path / "b"], "unknown format"),
        (["rdx", "--study", tmp_path / "imgs"], "not a medinterp study"),
        (["report", "--study", tmp_path / "nothing"], "not a medinterp study"),
    ]
    for argv, needle in cases:
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err


def test_unreachable_hub_fails_fast_with_advice(tmp_path):
    from medinterp.phantoms import make_phantoms
    imgs = make_phantoms(4, size=64, seed=0, out_dir=tmp_path / "imgs")
    r = medinterp("run", "--backbone", "biomedclip", "--images", imgs.root, "--out", tmp_path / "s",
                  env={"HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "local-dir" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def cxr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cxr"
    r = medinterp("--quiet", "demo", "--data", "cxr-demo", "--out", out, "--model-steps", 3)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def test_cxr_demo_study_audits_first_and_tests_only_testable_labels(cxr_run):
    "The real-X-ray study from the repository's own images: audit first, findings only for labels with >= 10 positives."
    out, stdout = cxr_run
    study, lines = Study.open(out), stdout.splitlines()
    assert lines[0].startswith(f"study {out}: 241 images, ") and "xray-vit" in lines[0]
    audit = study.audit()
    assert lines[1:1 + len(audit.lines())] == audit.lines()
    assert ("COVID-19", "source") in set(zip(audit.confounded["label"], audit.confounded["column"]))
    too_few = [l for l in lines if l.startswith("too few to test")]
    assert len(too_few) == 1 and "Pneumocystis (1 positive)" in too_few[0]
    tested = set(audit.tested)
    assert tested and "Pneumocystis" not in tested
    said = {l.split(":")[0] for l in lines if re.match(r"^[A-Za-z0-9_ -]+: (first organised|no transition|no reported)", l)}
    assert said == tested                                            # one finding line per tested label, no other
    table = study.findings()
    for line in finding_lines(table): assert line in lines
    from medinterp.study import _checked_columns
    for r in table[table["explained_by"] != ""].itertuples():       # an explained finding names a checked confound
        assert set(r.explained_by.split(", ")) <= set(_checked_columns(audit, r.label)) and "explained by" in r.explanation
    assert _checked_columns(audit, "COVID-19")[0] == "source"       # source columns first, then the other flagged ones
    assert set(audit.confounds("COVID-19")) <= set(_checked_columns(audit, "COVID-19"))
    sae = [l for l in lines if l.startswith("SAE ")]
    assert len(sae) == 1 and "Pneumocystis" not in sae[0]
    sig = study.sae_run().significance()
    assert set(sig["label"]) == tested and sig["q"].between(0, 1).all()
    html = study.report_path.read_text(encoding="utf-8")              # every concept's confound check is in the report
    assert html.index('id="audit"') < html.index('id="summary"')
    for i in range(len(study.sweep.pairs)):
        for r in study.explanations(i, "10").itertuples(): assert escape(r.explanation, quote=True) in html
    record = json.loads((out / "model").glob("xray-vit-*/metrics.json").__next__().read_text())
    assert set(record["targets"]) == {"finding_group=covid-19", "view=AP"}


def test_cxr_demo_options_are_checked(tmp_path):
    r = medinterp("demo", "--data", "cxr-demo", "--n", 10, "--out", tmp_path / "x")
    assert r.returncode == 2 and "--n and --model-images are for --data phantoms" in r.stderr
    r = medinterp("demo", "--backbone", "biomedclip-random", "--out", tmp_path / "y")
    assert r.returncode == 2 and "for --data cxr-demo" in r.stderr
