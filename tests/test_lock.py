"""One writer per study / store: a second writer process is refused at once naming the holder, the first one's store is
bit-identical to a single run, a dead holder's lock is taken over, and a crashed run's temporaries are removed."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from medinterp.core import LOCK_NAME, StudyLockedError, writer_lock
from medinterp.extract import extract, store_lock
from medinterp.phantoms import make_phantoms
from medinterp.study import Study, StudyConfig
from test_extract import assert_same_arrays, tiny_backbone

HERE = Path(__file__).resolve().parent
CFG = StudyConfig(name="t", backbone="tiny", dataset="phantoms", thumb_size=24)
KW = dict(pooling=("cls", "mean"), batch_size=2, progress=False)

WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_extract import tiny_backbone
    from medinterp.data import CXRDataset
    from medinterp.extract import extract
    from medinterp.study import Study, StudyConfig
    data, out, mode, marker = sys.argv[1:5]
    ds = CXRDataset.from_folder(data, data + "/metadata.csv", verify="none")
    bb = tiny_backbone(0)
    if mode.startswith("slow"):
        def hook(m, i):                                      # hold still (lock taken) until the test says go
            Path(marker).touch(); t = time.time()
            while not Path(marker + ".go").exists() and time.time() < t + 120: time.sleep(0.05)
        bb.module.register_forward_pre_hook(hook)
    t0 = time.time()
    try:
        if mode.endswith("store"): extract(ds, bb, out_dir=out, pooling=("cls", "mean"), batch_size=2, progress=False, verbose=False)
        else: Study.create(out, StudyConfig(name="t", backbone="tiny", dataset="phantoms", thumb_size=24)).extract(
            ds, bb, pooling=("cls", "mean"), batch_size=2, progress=False)
    except Exception:
        print(f"refused after {{time.time() - t0:.2f}} s", file=sys.stderr); raise
""")


def run_writer(data, out, mode, marker, popen=False):
    code = WRITER.format(tests=str(HERE))
    args = [sys.executable, "-c", code, str(data), str(out), mode, str(marker)]
    if popen: return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def start_holding_writer(data, out, marker):
    "A writer process that has taken the study's lock and waits (before its first batch) for `marker`.go."
    a = run_writer(data, out, "slow", marker, popen=True)
    deadline = time.time() + 180
    while not marker.exists() and a.poll() is None and time.time() < deadline: time.sleep(0.05)
    if a.poll() is not None: pytest.fail(f"the writer ended before it was holding the lock: {a.communicate()}")
    return a


def temporaries(folder: Path) -> list[str]:
    "Every `.*.tmp` file or `.*.partial` folder anywhere under `folder` (and beside it)."
    found = [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".partial"))]
    found += [p for p in folder.parent.glob(f".{folder.name}.*") if p.name.endswith((".tmp", ".partial"))]
    return sorted(str(p.relative_to(folder.parent)) for p in found)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return make_phantoms(12, size=64, seed=3, out_dir=tmp_path_factory.mktemp("ph") / "phantoms")


@pytest.fixture(scope="module")
def ref(phantoms, tmp_path_factory):
    "A single, undisturbed study extraction."
    s = Study.create(tmp_path_factory.mktemp("ref") / "s", CFG)
    s.extract(phantoms, tiny_backbone(0), **KW)
    return s


def assert_same_study(a: Study, b: Study):
    assert_same_arrays(a.store, b.store)
    assert a.store.index.equals(b.store.index)
    assert np.array_equal(np.asarray(a.thumbnails), np.asarray(b.thumbnails))
    assert a.images_path.read_bytes() == b.images_path.read_bytes()


def holder_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.startswith("medinterp.core.StudyLockedError: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_second_study_writer_is_refused_at_once_and_the_first_store_is_exact(phantoms, ref, tmp_path):
    out, marker = tmp_path / "s", tmp_path / "started"
    a = start_holding_writer(phantoms.root, out, marker)
    try:
        record = json.loads((out / LOCK_NAME).read_text())
        assert record["pid"] == a.pid and "slow" in record["command"]
        b = run_writer(phantoms.root, out, "fast", tmp_path / "unused")
        assert b.returncode != 0
        line = holder_line(b.stderr)
        for part in (f"pid {a.pid}", "on host ", f"since {record['since']}", "command:", str(out), "slow"): assert part in line, line
        took = float(b.stderr.split("refused after ")[1].split(" s")[0])
        assert took < 5, f"the second writer was refused only after {took} s"
        assert a.poll() is None, "the first writer had finished before the second was refused: nothing was tested"
        Path(str(marker) + ".go").touch()
        stdout, stderr = a.communicate(timeout=300)
    finally:
        if a.poll() is None: a.kill(); a.wait()
    assert a.returncode == 0, stderr
    assert_same_study(Study.open(out), ref)
    assert (out / LOCK_NAME).read_text() == "" and temporaries(out) == []


def test_store_writer_is_refused_while_this_process_holds_the_lock(phantoms, tmp_path):
    out = tmp_path / "acts"
    with store_lock(out) as lf:
        assert lf == tmp_path / ".acts.lock"
        b = run_writer(phantoms.root, out, "fast-store", tmp_path / "unused")
    assert b.returncode != 0
    line = holder_line(b.stderr)
    assert f"pid {os.getpid()}" in line and str(out) in line
    assert not out.exists()                                         # the refused writer wrote nothing
    store = extract(phantoms, tiny_backbone(0), out_dir=out, pooling=("cls", "mean"), batch_size=2, progress=False,
                    verbose=False)                                  # free again once released
    assert store.complete


def test_lock_is_exclusive_between_processes_and_reentrant_within_one(tmp_path):
    probe = "import sys; from medinterp.core import writer_lock\nwith writer_lock(sys.argv[1]): print('got it')"
    with writer_lock(tmp_path):
        with writer_lock(tmp_path): pass                            # re-entrant here: still held afterwards
        r = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "got it" not in r.stdout
        assert len(holder_line(r.stderr).splitlines()) == 1
    r = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "got it" in r.stdout, r.stderr


def test_a_dead_holders_lock_is_taken_over_with_a_note(phantoms, ref, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    out = tmp_path / "s"
    s = Study.create(out, CFG)
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": "ghost", "since": "2026-01-01T00:00:00+00:00",
                                             "command": "medinterp extract --out s"}))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s.extract(phantoms, tiny_backbone(0), **KW)
    notes = [str(x.message) for x in w if "taking over" in str(x.message)]
    assert len(notes) == 1 and f"pid {dead.pid}" in notes[0] and "ghost" in notes[0], notes
    assert (out / LOCK_NAME).read_text() == ""
    assert_same_study(s, ref)


def test_a_killed_run_then_a_rerun_leaves_no_temporaries(phantoms, ref, tmp_path):
    out, marker = tmp_path / "s", tmp_path / "started"
    a = start_holding_writer(phantoms.root, out, marker)
    try:
        os.kill(a.pid, signal.SIGKILL); a.wait(30)
    finally:
        if a.poll() is None: a.kill(); a.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == a.pid     # the dead writer's record is left
    # what a kill during each kind of temporary write leaves behind
    acts = out / "activations"
    planted = [acts / ".manifest.json.k2j4.tmp", acts / ".index.csv.x9.tmp", out / ".thumbnails.npy.q1w2.tmp",
               out / ".images.csv.r5.tmp", out / ".report.html.z8.tmp", out / "sae" / ".run.a1b2.partial" / "model.pt",
               out / "rdx" / ".sweep.json.c3.tmp", out / ".activations.p0p1.partial" / "manifest.json"]
    for p in planted: p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b"half")
    assert len(temporaries(out)) >= len(planted)
    s = Study.open(out)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s.extract(phantoms, tiny_backbone(0), **KW)
    assert any(f"pid {a.pid}" in str(x.message) for x in w)
    assert temporaries(out) == [], temporaries(out)
    assert_same_study(s, ref)


def test_study_stages_refuse_a_second_writer(ref, tmp_path):
    "Each writing stage of a study checks the lock: a stage run while another process holds it is refused."
    probe = ("import sys; from medinterp.study import Study\n"
             "s = Study.open(sys.argv[1])\n"
             "getattr(s, sys.argv[2])(**({'progress': False}))")
    with ref.lock():
        for stage in ("run_rdx", "train_sae", "export_html"):
            r = subprocess.run([sys.executable, "-c", probe, str(ref.path), stage], capture_output=True, text=True,
                               timeout=120)
            assert r.returncode != 0 and f"pid {os.getpid()}" in holder_line(r.stderr), (stage, r.stderr)
    assert not ref.rdx_dir.exists() and not ref.sae_dir.exists() and not ref.report_path.exists()


def test_creating_a_study_another_process_is_creating_is_refused(tmp_path):
    "Two processes creating one study folder at once: the second is refused naming the first and writes no config."
    probe = ("import sys; from medinterp.study import Study, StudyConfig\n"
             "Study.create(sys.argv[1], StudyConfig(name='t', dataset='seed 2'))")
    out = tmp_path / "s"
    with writer_lock(out):                                          # the first creator, between its check and its write
        r = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and f"pid {os.getpid()}" in holder_line(r.stderr), r.stderr
        assert not (out / "config.json").exists()
    assert Study.create(out, StudyConfig(name="t", dataset="seed 1")).config.dataset == "seed 1"


def test_study_locked_error_is_a_one_line_user_error():
    assert issubclass(StudyLockedError, RuntimeError) and issubclass(StudyLockedError, ValueError)


def test_the_cli_reports_a_locked_study_in_one_line_with_exit_2(ref):
    "The CLI turns `StudyLockedError` (a `ValueError`, one of its `USER_ERRORS`) into one line and exit status 2."
    call = "import sys; from medinterp.cli import main; sys.exit(main(sys.argv[1:]))"
    with ref.lock():
        r = subprocess.run([sys.executable, "-c", call, "report", "--study", str(ref.path)], capture_output=True,
                           text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("medinterp report: error: "), r.stderr
    assert f"pid {os.getpid()}" in lines[0] and "is being written by another process" in lines[0]
    assert "Traceback" not in r.stderr and not ref.report_path.exists()
