"""Every image that could not be read is on record (store manifest, skipped.csv, images.csv, report), and a study with
no readable image is refused with its causes counted (issue 17, items 2 and 3)."""
import io
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medinterp.data import CXRDataset
from medinterp.extract import ActivationStore, NoReadableImagesError, extract, merge_stores
from medinterp.study import SKIPPED_CSV_COLUMNS, Study, StudyConfig, require_images, skipped_line
from test_extract import tiny_backbone

pydicom = pytest.importorskip("pydicom")
from test_data import write_dcm  # noqa: E402

BAD = {"truncated.png": "undecodable", "empty.png": "not an image", "text.png": "not an image", "tiny.png": "too small",
       "nopix1.dcm": "DICOM without pixel data", "nopix2.dcm": "DICOM without pixel data",
       "missing.png": "missing file", "good0.png": "duplicate id"}
KW = dict(pooling=("cls",), batch_size=4, progress=False)


def write_bad_files(d, good: int = 3):
    """`good` readable 64 px PNGs, a truncated PNG, a zero-byte file, a text file named .png, a 1x1 PNG and two DICOMs
    without pixel data; returns the file names in that order."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"good{i}.png" for i in range(good)]
    for n in names: Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(d / n)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(d / "tiny.png")
    for k in (1, 2):
        p = write_dcm(d / f"nopix{k}.dcm", np.zeros((64, 64), dtype=np.uint16), PatientID="SECRET-PATIENT")
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
    return names + ["truncated.png", "empty.png", "text.png", "tiny.png", "nopix1.dcm", "nopix2.dcm"]


def bad_folder(d, good: int = 3):
    "The issue's folder: the bad files plus a CSV that also lists a missing file and a duplicate id."
    files = write_bad_files(d, good) + ["missing.png", "good0.png"]
    ids = [f.split(".")[0] for f in files[:-1]] + ["good0"]
    pd.DataFrame({"id": ids, "path": files, "label": [i % 2 for i in range(len(files))],
                  "site": ["SECRET-SITE"] * len(files)}).to_csv(d / "meta.csv", index=False)
    return d


def load(d, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CXRDataset.from_folder(d, d / "meta.csv", on_error="skip", **kw)


def new_study(path):
    return Study.create(path, StudyConfig(name="bad", backbone="tiny", dataset="bad", thumb_size=16))


@pytest.fixture(scope="module")
def bad_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("skipped")
    d = bad_folder(root / "bad")
    s = new_study(root / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.extract(load(d), tiny_backbone(2), on_error="skip", **KW)
    return s, d


def test_manifest_lists_every_skipped_image(bad_study):
    s, _ = bad_study
    m = json.loads((s.activations_dir / "manifest.json").read_text())
    got = {r["path"]: r for r in m["skipped"]}
    assert len(m["skipped"]) == 8 and set(got) == set(BAD)
    assert all(r["stage"] == "load" and r["row"] is None and r["reason"] for r in got.values())
    assert got["truncated.png"]["metadata_row"] is not None
    text = json.dumps(m["skipped"])
    assert "SECRET" not in text                                          # no metadata values, no patient ids
    assert len(s.store) == 3 and s.store.valid.all()                     # the readable rows are untouched
    assert len(ActivationStore.open(s.activations_dir).skipped) == 8


def test_skipped_csv_lists_all_eight_with_reasons(bad_study):
    s, _ = bad_study
    t = pd.read_csv(s.path / "skipped.csv", dtype=str, keep_default_na=False)
    assert t.columns.tolist() == SKIPPED_CSV_COLUMNS == ["file", "reason", "row"]
    assert sorted(t["file"]) == sorted(BAD) and (t["reason"] != "").all() and (t["row"] != "").all()
    from medinterp.extract import skip_kind
    assert {f: skip_kind(r) for f, r in zip(t["file"], t["reason"])} == BAD
    assert "SECRET" not in (s.path / "skipped.csv").read_text()
    assert s.skipped().equals(t)
    assert not list(s.path.glob("*.tmp")) and not list(s.path.glob(".*skipped*"))   # written atomically


def test_skipped_line_for_the_cli(bad_study):
    s, _ = bad_study
    line = skipped_line(s)
    assert line.startswith("8 image(s) skipped: ") and line.endswith(f"full list: {s.path / 'skipped.csv'}")
    assert line.count(".png: ") + line.count(".dcm: ") == 3 and "(and 5 more)" in line


def test_report_shows_the_section(bad_study):
    import medinterp.report  # noqa: F401  (adds Study.export_html)
    s, _ = bad_study
    h = s.export_html(progress=False).read_text()
    sec = h[h.index('<section id="skipped">'):]
    sec = sec[:sec.index("</section>")]
    assert "8 images could not be read" in sec
    for kind, n in [("DICOM without pixel data", 2), ("not an image", 2), ("undecodable", 1), ("too small", 1),
                    ("missing file", 1), ("duplicate id", 1)]:
        assert f"{n} {kind}" in sec
    assert "metadata row" in sec and "skipped.csv" in sec
    toc = h[h.index('<nav id="contents">'):]
    assert '<a href="#skipped">8 images could not be read</a>' in toc[:toc.index("</nav>")]   # listed in the contents
    assert "Nothing to test: the dataset has no label columns" in h      # its CSV's plain 'label' column is no label
    h = s.export_html(progress=False, include_ids=True).read_text()
    assert not any(f in h for f in BAD if f != "good0.png")                  # file names can hold patient ids: never
    assert "SECRET" not in h


def test_no_section_when_every_image_was_read(tmp_path):
    import medinterp.report  # noqa: F401
    d = tmp_path / "good"
    write_bad_files(d)
    for f in d.iterdir():
        if not f.name.startswith("good"): f.unlink()
    s = new_study(tmp_path / "s")
    s.extract(CXRDataset.from_folder(d), tiny_backbone(2), **KW)
    assert len(s.skipped()) == 0 and skipped_line(s) is None
    h = s.export_html(progress=False).read_text()
    assert 'id="skipped"' not in h and 'href="#skipped"' not in h


def test_unreadable_at_extraction_fill_images_csv_and_the_lists(tmp_path):
    """verify='none' defers decoding to extraction: those rows are NaN, with their reason in images.csv and skipped.csv;
    the 1x1 image is refused there by the dataset's min_size (it was extracted, upscaled, before)."""
    d = bad_folder(tmp_path / "bad")
    s = new_study(tmp_path / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.extract(load(d, verify="none"), tiny_backbone(2), on_error="skip", **KW)
    img = s.images.set_index("id")
    for i in ("truncated", "empty", "text", "tiny", "nopix1", "nopix2"):
        assert img.loc[i, "error"] != ""
    assert "too small: 1x1" in img.loc["tiny", "error"]
    assert (img.loc[["good0", "good1", "good2"], "error"] == "").all()
    sk = s.store.skipped
    assert set(sk.loc[sk["stage"] == "extract", "path"]) == {"truncated.png", "empty.png", "text.png", "tiny.png", "nopix1.dcm", "nopix2.dcm"}
    assert set(sk.loc[sk["stage"] == "load", "path"]) == {"missing.png", "good0.png"}
    assert sorted(s.skipped()["file"]) == sorted(sk["path"])
    assert (~s.store.valid).sum() == 6
    csv_line = {f: i + 2 for i, f in enumerate(pd.read_csv(d / "meta.csv")["path"])}   # the header is line 1
    table = pd.read_csv(s.path / "skipped.csv", dtype=str, keep_default_na=False)
    late = table[table["file"].isin(["truncated.png", "empty.png", "text.png", "tiny.png", "nopix1.dcm", "nopix2.dcm"])]
    assert len(late) == 6 and all(int(r) == csv_line[f] for f, r in zip(late["file"], late["row"]))   # traced to the CSV


def test_merge_keeps_load_skips_once_and_shifts_extraction_rows(tmp_path):
    d = bad_folder(tmp_path / "bad")
    ds = load(d, verify="none")
    b = tiny_backbone(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [extract(ds, b, None, tmp_path / f"p{i}", shard=(i, 2), on_error="skip", verbose=False, **KW)
                 for i in (0, 1)]
        whole = extract(ds, b, None, tmp_path / "whole", on_error="skip", verbose=False, **KW)
    merged = merge_stores(parts, tmp_path / "m")
    key = lambda t: sorted(map(str, t[["row", "path", "reason", "stage"]].astype(str).values.tolist()))
    assert key(merged.skipped) == key(whole.skipped) and len(merged.skipped) == 8
    assert (merged.valid == whole.valid).all()


def test_zero_readable_images_raise_with_counted_causes(tmp_path):
    d = tmp_path / "allbad"
    write_bad_files(d, good=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = CXRDataset.from_folder(d, on_error="skip")
    assert len(ds) == 0
    with pytest.raises(NoReadableImagesError) as e:
        extract(ds, tiny_backbone(2), None, tmp_path / "store", **KW)
    msg = str(e.value)
    assert "0 of 6 images could be read: 2 DICOM without pixel data, 2 not an image, 1 too small, 1 undecodable" in msg
    assert isinstance(e.value, ValueError) and len(e.value.records) == 6
    assert not (tmp_path / "store").exists()
    s = new_study(tmp_path / "s")
    with pytest.raises(NoReadableImagesError, match="0 of 6 images could be read"):
        s.extract(ds, tiny_backbone(2), **KW)
    assert len(s.skipped()) == 6                                     # the causes stay on record
    import medinterp.report  # noqa: F401
    for stage in (lambda: s.run_rdx(progress=False), lambda: s.train_sae(progress=False),
                  lambda: s.export_html(progress=False)):
        with pytest.raises(NoReadableImagesError, match="is empty .extract read no image.: 0 of 6 images could be read"):
            stage()


def test_every_row_unreadable_at_extraction_raises_and_stages_refuse(tmp_path):
    d = tmp_path / "allbad"
    write_bad_files(d, good=0)
    ds = CXRDataset.from_folder(d, verify="none")                   # nothing checked: the 1x1 image is refused later
    s = new_study(tmp_path / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoReadableImagesError, match="0 of 6 images could be read: 2 DICOM without pixel data, "
                                                        "2 not an image, 1 too small, 1 undecodable"):
            s.extract(ds, tiny_backbone(2), on_error="skip", **KW)
    assert len(s.skipped()) == 6
    with pytest.raises(NoReadableImagesError, match="run_rdx: the study .* is empty"):
        s.run_rdx(progress=False)
    with pytest.raises(NoReadableImagesError):
        require_images(s)
