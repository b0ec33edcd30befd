"""The `medinterp` command: the demo end to end on a small --n (its printed findings are true of its study and its
report), resumption, and one-line errors for wrong paths, formats, studies and an unreachable hub."""
import re
import json
from html import escape
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from medinterp.cli import main
from medinterp.sweep import finding_lines
from medinterp.study import Study, StudyConfig

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


# ---------------------------------------------------------------- item 4 of issue 17: every user error is one line, exit 2

@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    "Six phantoms and a phantom ViT trained for two steps."
    from medinterp.phantom_vit import PhantomViTConfig, train_phantom_vit
    from medinterp.phantoms import make_phantoms
    tmp = tmp_path_factory.mktemp("tiny")
    ds = make_phantoms(6, size=64, seed=0, out_dir=tmp / "imgs", progress=False)
    train_phantom_vit(ds, tmp / "vit", PhantomViTConfig(image_size=64, depth=2, width=32, heads=2, batch_size=4, max_steps=2),
                      progress=False)
    return tmp, ds, f"phantom-vit:{tmp / 'vit'}"


def _one_line_error(r, needle):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and needle in err, err
    assert "not by one of medinterp's checks" not in err, err                  # each is a check of medinterp's own


def _hostile_checkpoint(folder: Path, weights: bytes) -> Path:
    "An open_clip local-dir with a valid small config and `weights` as its .bin file."
    import pickle as _p
    folder.mkdir(parents=True)
    cfg = {"embed_dim": 24, "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
           "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    (folder / "open_clip_pytorch_model.bin").write_bytes(weights)
    return folder


class _Evil:
    def __reduce__(self): return (os.system, ("touch /tmp/medinterp-pwned",))


def test_each_user_error_is_one_line_exit_2(tiny_vit, tmp_path):
    import pickle as _p
    tmp, ds, bb = tiny_vit
    meta = ds.root / "metadata.csv"
    base = ["extract", "--backbone", bb, "--images", ds.root]
    cases = [
        ([*base, "--n", "-5", "--out", tmp_path / "a"], "--n: must be a positive number"),
        ([*base, "--n", "0", "--out", tmp_path / "a"], "--n: must be a positive number"),
        ([*base, "--batch-size", "0", "--out", tmp_path / "a"], "--batch-size: must be a positive number"),
        ([*base, "--format", "nih", "--out", tmp_path / "a"], "--format nih needs --metadata"),
        ([*base, "--metadata", meta, "--layers", "trunk.blocks.0,nope", "--out", tmp_path / "b"], "unknown layer(s) ['nope']"),
        ([*base, "--pooling", "cls,max", "--out", tmp_path / "a"], "unknown pooling max"),
        ([*base, "--precision", "int8", "--out", tmp_path / "a"], "invalid choice: 'int8'"),
        ([*base, "--shard", "3/2", "--out", tmp_path / "a"], "I must be in 1..N"),
        ([*base, "--shard", "0/2", "--out", tmp_path / "a"], "I must be in 1..N"),
        ([*base, "--shard", "1-2", "--out", tmp_path / "a"], "--shard must be I/N"),
        (["extract", "--backbone", f"local-dir:{tmp_path / 'no-such'}", "--images", ds.root, "--out", tmp_path / "a"], "is not a folder"),
        (["extract", "--backbone", f"local-dir:{_hostile_checkpoint(tmp_path / 'evil', _p.dumps(_Evil()))}",
          "--images", ds.root, "--out", tmp_path / "c"], "could not be loaded safely"),
        (["extract", "--backbone", f"local-dir:{_hostile_checkpoint(tmp_path / 'junk', b'not a checkpoint')}",
          "--images", ds.root, "--out", tmp_path / "d"], "could not be loaded safely"),
        (["sae", "--study", tmp_path / "nothing", "--architecture", "nope"], "invalid choice: 'nope'"),
        (["demo", "--n", "-1"], "--n: must be a positive number"),
        (["merge", tmp_path / "m", tmp_path / "no-shard"], "not a medinterp study"),
        ([*base, "--seed", "-1", "--out", tmp_path / "a"], "--seed: must be a non-negative integer"),
        (["extract", "--backbone", bb, "--images", meta, "--out", tmp_path / "a"], "is a file; give the folder"),
        ([*base, "--device", "cuda:7", "--out", tmp_path / "a"], "requested but"),     # no GPU, or fewer than 8
        (["run", *base[1:], "--min-stability", "3", "--out", tmp_path / "a"], "min_stability must lie in [0, 1]"),
    ]
    for argv, needle in cases: _one_line_error(medinterp("--quiet", *argv), needle)
    assert not Path("/tmp/medinterp-pwned").exists()
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
    r = medinterp("--debug", *base, "--format", "nih", "--out", tmp_path / "a")   # --debug keeps the traceback
    assert r.returncode == 1 and "Traceback" in r.stderr and "needs --metadata" in r.stderr


def _without_override(*args):
    """The CLI unable to write where its user may not: as root (which writes anywhere) through `setpriv`, without the
    capabilities that override file permissions; else as this user."""
    if os.geteuid() != 0: return medinterp(*args)
    import shutil
    if not shutil.which("setpriv"): pytest.skip("root without setpriv: cannot make a folder it may not write")
    e = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", sys.executable, "-c", CALL,
                           *map(str, args)], capture_output=True, text=True, env=e, timeout=600)


def test_unwritable_output_is_one_line_exit_2(tiny_vit):
    tmp, ds, bb = tiny_vit
    ro = tmp / "read-only"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    _one_line_error(_without_override("--quiet", "extract", "--backbone", bb, "--images", ds.root, "--n", "all", "--out", ro / "s"),
                    f"cannot write or read {ro / 's'}: permission denied")
    r = medinterp("--quiet", "extract", "--backbone", bb, "--images", ds.root, "--out", tmp / "study")
    assert r.returncode == 0, r.stderr[-2000:]
    for p in [tmp / "study", *(tmp / "study").rglob("*")]: p.chmod(0o555 if p.is_dir() else 0o444)
    _one_line_error(_without_override("--quiet", "merge", ro / "m", tmp / "study"), "permission denied")
    _one_line_error(_without_override("--quiet", "rdx", "--study", tmp / "study", "--clusters", "2", "--stability-runs", "0"), "permission denied")


def test_errors_of_other_modules_are_caught_by_class_name(monkeypatch, capsys):
    import medinterp.cli as cli
    class StudyLockedError(RuntimeError): pass          # the study lock's error, wherever it is defined
    class NoReadableImagesError(ValueError): pass
    for exc in (StudyLockedError("the study is held by pid 7 on host since 12:00 (medinterp extract)"),
                NoReadableImagesError("0 of 8 images could be read:\n  truncated PNG: 3")):
        monkeypatch.setattr(cli, "_dispatch", lambda a, progress, exc=exc: (_ for _ in ()).throw(exc))
        assert main(["report", "--study", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(exc).split()[0] in err, err
    monkeypatch.setattr(cli, "_dispatch", lambda a, progress: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"): main(["report", "--study", "x"])   # a bug is not a user error
    monkeypatch.setattr(cli, "_dispatch", lambda a, progress: json.loads("{"))      # a ValueError from inside json
    assert main(["report", "--study", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raised inside json" in err and "--debug" in err, err


def test_an_unchecked_error_in_medinterp_says_it_may_be_a_bug(monkeypatch, capsys, tmp_path):
    "A KeyError from a medinterp line with no `raise` (a lookup its checks did not guard) names that line."
    import medinterp.cli as cli
    from medinterp.core import load_config
    (tmp_path / "config.json").write_text('{"config_type": "StudyConfig"}')       # right type, no 'config' entry
    monkeypatch.setattr(cli, "_dispatch", lambda a, progress: load_config(tmp_path, StudyConfig))
    assert main(["report", "--study", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"medinterp report: error: config \(KeyError raised at medinterp\.core line \d+, not by one of "
                        r"medinterp's checks: if the input is right this may be a bug; medinterp --debug \.\.\. shows "
                        r"where\)", err), err
    from medinterp.rdx import RDXConfig
    monkeypatch.setattr(cli, "_dispatch", lambda a, progress: load_config(tmp_path, RDXConfig))   # a check: plain
    assert main(["report", "--study", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("holds a StudyConfig, not a RDXConfig"), err


def test_cli_parity_options_reach_the_library(tiny_vit, tmp_path):
    """--layers, --pooling, --precision, --batch-size reach the store; sae --architecture matryoshka, rdx --seed and the
    concept-quality options their configs (and decide the flags)."""
    from medinterp.cli import _rdx_config, _sae_config, parser
    from medinterp.phantoms import make_phantoms
    from medinterp.rdx import RDXConfig
    tmp, _, bb = tiny_vit
    ds = make_phantoms(40, size=64, seed=1, out_dir=tmp_path / "imgs", progress=False)
    r = medinterp("--quiet", "extract", "--backbone", bb, "--images", ds.root, "--n", "all", "--layers",
                  "trunk.blocks.0, trunk.blocks.1", "--pooling", "mean", "--precision", "bfloat16", "--batch-size", 4,
                  "--out", tmp_path / "s")
    assert r.returncode == 0, r.stderr[-2000:]
    m = Study.open(tmp_path / "s").store.manifest
    assert (m["layers"], m["poolings"], m["precision"], m["batch_size"], m["rows_total"]) == \
        (["trunk.blocks.0", "trunk.blocks.1"], ["mean"], "bfloat16", 4, 40)
    r = medinterp("--quiet", "sae", "--study", tmp_path / "s", "--architecture", "matryoshka", "--expansion", 2, "--k", 4,
                  "--epochs", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    run = Study.open(tmp_path / "s").sae_run()
    assert run.config.architecture == "matryoshka" and run.config.k == 4
    r = medinterp("--quiet", "rdx", "--study", tmp_path / "s", "--seed", 7, "--clusters", 3, "--stability-runs", 2,
                  "--stability-fraction", 0.8, "--min-stability", 0.95, "--min-size", 4, "--max-share", 0.3)
    assert r.returncode == 0, r.stderr[-2000:]
    sw = Study.open(tmp_path / "s").sweep
    c = sw.config
    assert (c.seed, c.n_clusters, c.stability_runs, c.stability_fraction, c.min_stability, c.min_size, c.max_share) == \
        (7, 3, 2, 0.8, 0.95, 4, 0.3)
    for pair in sw.pairs:                              # the quality options decide what is flagged
        for concept in sw.concepts(pair, "10", flagged=True):
            assert ("tiny" in concept.flags) == (concept.size < 4), concept
            assert ("catch_all" in concept.flags) == (concept.size > 0.3 * len(sw.rows)), concept
            assert ("unstable" in concept.flags) == (concept.stability is not None and concept.stability < 0.95), concept
    assert _rdx_config(parser().parse_args(["rdx", "--study", "x"])) == RDXConfig()   # the CLI's defaults are the library's
    assert _rdx_config(parser().parse_args(["rdx", "--study", "x", "--seed", "7"])).seed == 7
    assert _rdx_config(parser().parse_args(["run", "--backbone", "b", "--images", "i", "--out", "o", "--rdx-seed", "5"])).seed == 5
    assert _sae_config(parser().parse_args(["sae", "--study", "x", "--architecture", "matryoshka"])).architecture == "matryoshka"


def test_bad_files_through_the_cli_are_on_record(tiny_vit, tmp_path):
    "The issue's folder of 8 unreadable entries through `medinterp extract` and `report`: exit 0, all 8 on record."
    import pandas as pd
    pytest.importorskip("pydicom")
    from test_skipped import bad_folder
    _, _, bb = tiny_vit
    d, out = bad_folder(tmp_path / "bad"), tmp_path / "s"
    r = medinterp("--quiet", "extract", "--backbone", bb, "--images", d, "--metadata", d / "meta.csv", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    skipped = pd.read_csv(out / "skipped.csv")
    assert len(skipped) == 8 and skipped["reason"].astype(str).str.len().gt(0).all()
    said = [l for l in r.stdout.splitlines() if "skipped" in l]
    assert said and said[0].startswith("8 image(s) skipped") and str(out / "skipped.csv") in said[0], r.stdout
    assert medinterp("--quiet", "report", "--study", out).returncode == 0
    assert "8 images could not be read" in (out / "report.html").read_text(encoding="utf-8")


def test_no_readable_image_is_exit_2_with_the_causes(tiny_vit, tmp_path):
    pytest.importorskip("pydicom")
    from test_skipped import write_bad_files
    _, _, bb = tiny_vit
    d = tmp_path / "allbad"; write_bad_files(d, good=0)
    r = medinterp("--quiet", "extract", "--backbone", bb, "--images", d, "--out", tmp_path / "s")
    _one_line_error(r, "images could be read")
    assert "0 of" in r.stderr


def test_a_second_extract_on_a_locked_study_is_refused_in_one_line(tiny_vit, tmp_path):
    "While another writer holds the study (here: this process), `medinterp extract` into it stops at once, exit 2."
    from medinterp.core import writer_lock
    tmp, ds, bb = tiny_vit
    out = tmp_path / "locked"; out.mkdir()
    with writer_lock(out):
        r = medinterp("--quiet", "extract", "--backbone", bb, "--images", ds.root, "--out", out)
    _one_line_error(r, f"pid {os.getpid()}")
    assert not (out / "activations").exists()


HELD_EXTRACT = """
import sys, time
from pathlib import Path
import medinterp.cli as cli
marker, argv, load = Path(sys.argv[1]), sys.argv[2:], cli.load_backbone
def held(key, device):                       # the real backbone, made to wait before each batch until the test says go
    bb = load(key, device)
    def hold(module, inputs):
        marker.touch(); t = time.time()
        while not Path(str(marker) + ".go").exists() and time.time() < t + 120: time.sleep(0.05)
    bb.module.register_forward_pre_hook(hold)
    return bb
cli.load_backbone = held
sys.exit(cli.main(argv))
"""


def test_two_racing_extracts_one_refused_and_the_store_exact(tiny_vit, tmp_path):
    """The issue's race: a second `medinterp extract` on the --out of a running one is refused at once in one line,
    exit 2 — with --seed 2 because the study is of other images, with the same command because the first holds the
    study's lock (naming it) — and the first's study then equals, bit for bit, a single undisturbed `extract --seed 1`."""
    from test_extract import assert_same_arrays
    _, ds, bb = tiny_vit
    def argv(out, seed): return ["--quiet", "extract", "--backbone", bb, "--images", ds.root, "--n", 4, "--seed", seed, "--out", out]
    single = medinterp(*argv(tmp_path / "single", 1))
    assert single.returncode == 0, single.stderr[-2000:]
    out, marker = tmp_path / "raced", tmp_path / "holding"
    first = subprocess.Popen([sys.executable, "-c", HELD_EXTRACT, str(marker), *map(str, argv(out, 1))], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.time() + 300
        while not marker.exists() and first.poll() is None and time.time() < deadline: time.sleep(0.05)
        assert first.poll() is None, f"the first extract ended before the second started: {first.communicate()}"
        other = medinterp(*argv(out, 2))                            # other images: the study's config says no
        _one_line_error(other, "holds a study with another config (dataset 'imgs (4 images, seed 1)' there, "
                               "'imgs (4 images, seed 2)' asked")
        same = medinterp(*argv(out, 1))                             # the same command again: the lock says no
        assert first.poll() is None, "the first extract had finished before the second was refused: nothing was tested"
        _one_line_error(same, f"pid {first.pid}")
        assert "since" in same.stderr and "command:" in same.stderr
        Path(str(marker) + ".go").touch()
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None: first.kill(); first.wait()
    assert first.returncode == 0, stderr[-2000:]
    a, b = Study.open(out), Study.open(tmp_path / "single")
    assert_same_arrays(a.store, b.store)
    assert a.store.ids == b.store.ids and a.store.index.equals(b.store.index)
    assert np.array_equal(np.asarray(a.thumbnails), np.asarray(b.thumbnails))
    assert a.images_path.read_bytes() == b.images_path.read_bytes()
    assert a.config.replace(name="s") == b.config.replace(name="s") and "seed 1" in a.config.dataset


def test_a_refused_merge_leaves_no_study_behind(tiny_vit, tmp_path):
    "`medinterp merge` with a shard missing: one line naming it in the CLI's terms, exit 2, and no half-made study."
    _, ds, bb = tiny_vit
    r = medinterp("--quiet", "extract", "--backbone", bb, "--images", ds.root, "--n", "all", "--shard", "1/2",
                  "--batch-size", 2, "--out", tmp_path / "s1")
    assert r.returncode == 0, r.stderr[-2000:]
    r = medinterp("--quiet", "merge", tmp_path / "m", tmp_path / "s1")
    _one_line_error(r, "missing: shard=(1, 2) (--shard 2/2)")
    assert not (tmp_path / "m").exists()


def test_labels_of_a_plain_csv_are_named_with_labels(tiny_vit, tmp_path):
    "A plain CSV's 0/1 column becomes a label with --labels; without it the summary says how to name label columns."
    import pandas as pd
    _, ds, bb = tiny_vit
    meta = pd.read_csv(ds.root / "metadata.csv")
    csv = tmp_path / "plain.csv"
    pd.DataFrame({"id": meta["id"], "path": meta["path"], "sick": meta["label:effusion"]}).to_csv(csv, index=False)
    base = ["--quiet", "extract", "--backbone", bb, "--images", ds.root, "--metadata", csv, "--n", "all"]
    r = medinterp(*base, "--out", tmp_path / "without")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "audit: 0 of 0 labels" in r.stdout and "no label columns: name them with --labels" in r.stdout
    r = medinterp(*base, "--labels", "sick", "--out", tmp_path / "with")
    assert r.returncode == 0, r.stderr[-2000:]
    assert Study.open(tmp_path / "with").store.manifest["dataset"]["label_names"] == ["sick"]
    assert "no label columns" not in r.stdout
    _one_line_error(medinterp(*base[:-4], "--labels", "sick", "--out", tmp_path / "x"), "--labels needs --metadata")
