"""Tests of medinterp.data: image decoding, label-file readers, CXRDataset, patient splits.

Every fixture is generated in tmp_path. DICOM fixtures are written with pydicom directly (not with
medinterp.data.write_dicom) so the reader is checked against an independent writer.
"""
import io
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import medinterp.data as D
from medinterp.data import (CHEXPERT_LABELS, KINDS, KINDS_FILE, NIH_LABELS, CXRDataset, ImageReadError, check_kinds,
                            column_kinds, cxr_demo_dir, detect_csv_format, dicom_metadata, hash_patient_id,
                            patient_split, read_chexpert_labels, read_cxr_demo_metadata, read_image,
                            read_medinterp_csv, read_nih_labels, read_rsna_labels, write_kinds)

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless,  # noqa: E402
                         SecondaryCaptureImageStorage, generate_uid)


# ----------------------------------------------------------------------------------------------------- fixtures
def write_dcm(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, syntax=ExplicitVRLittleEndian,
              encapsulated=None, frames=None, **tags):
    """A DICOM file from `pixels` (H x W ints, H x W x 3 uint8, or F x H x W for multi-frame) via plain pydicom."""
    a = np.asarray(pixels)
    fm = FileMetaDataset()
    fm.TransferSyntaxUID = syntax
    fm.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    fm.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, fm.MediaStorageSOPInstanceUID
    color = photometric in ("RGB", "YBR_FULL")
    shape = a.shape[-3:-1] if color else a.shape[-2:]
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 * a.dtype.itemsize
    ds.BitsStored = bits_stored or 8 * a.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(a.dtype.kind == "i")
    if frames:
        ds.NumberOfFrames = frames
    for k, v in tags.items():
        setattr(ds, k, v)
    if encapsulated is not None:
        ds.PixelData = encapsulate([encapsulated])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"))).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_png(path, arr, **kw):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return Path(path)


def gray(n=64, value=None, seed=0):
    rng = np.random.default_rng(seed)
    return np.full((n, n), value, np.uint8) if value is not None else rng.integers(0, 256, (n, n), dtype=np.uint8)


def linear_window(x, c, w):
    "DICOM PS3.3 C.11.2.1.2.1 LINEAR window, written out piecewise (independent of the library's clip form)."
    x = np.asarray(x, dtype=np.float64)
    y = (x - (c - 0.5)) / (w - 1) + 0.5
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, y)
    return np.where(x > c - 0.5 + (w - 1) / 2, 1.0, y)


def check_every_kind(ds, **expected):
    "Every label and metadata column of `ds` has a kind from KINDS, in column order; `expected` are some of them."
    assert list(ds.kinds) == [*ds.label_names, *ds.meta.columns]
    assert set(ds.kinds.values()) <= set(KINDS), ds.kinds
    assert {c: ds.kinds[c] for c in expected} == expected


def minmax(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.min()) / (x.max() - x.min())


RAMP12 = (np.arange(64 * 64).reshape(64, 64) * 4095 // (64 * 64 - 1)).astype(np.uint16)   # 0..4095


# ------------------------------------------------------------------------------------------------ DICOM decoding
def test_dicom_12bit_in_16_masks_unused_bits(tmp_path):
    noisy = RAMP12 | np.uint16(0xF000)                     # garbage above BitsStored must be ignored
    p = write_dcm(tmp_path / "a.dcm", noisy, bits_stored=12)
    img = read_image(p)
    assert img.dtype == np.float32 and img.shape == (64, 64)
    np.testing.assert_allclose(img, minmax(RAMP12), atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    pix = np.zeros((64, 64), np.uint16)
    pix[:, 32:] = 4000                                    # high stored values on the right
    m2 = read_image(write_dcm(tmp_path / "m2.dcm", pix, bits_stored=12))
    m1 = read_image(write_dcm(tmp_path / "m1.dcm", pix, bits_stored=12, photometric="MONOCHROME1"))
    assert m2[:, 40].mean() > 0.9 and m2[:, 5].mean() < 0.1      # MONOCHROME2: high = bright
    assert m1[:, 40].mean() < 0.1 and m1[:, 5].mean() > 0.9      # MONOCHROME1: high = dark
    np.testing.assert_allclose(m1, 1 - m2, atol=1e-6)
    # with a file window too, MONOCHROME1 is inverted after the VOI step
    w2 = read_image(write_dcm(tmp_path / "w2.dcm", RAMP12, bits_stored=12, WindowCenter=2000, WindowWidth=1000))
    w1 = read_image(write_dcm(tmp_path / "w1.dcm", RAMP12, bits_stored=12, WindowCenter=2000, WindowWidth=1000,
                              photometric="MONOCHROME1"))
    np.testing.assert_allclose(w1, 1 - w2, atol=1e-6)


def test_rescale_then_file_window(tmp_path):
    p = write_dcm(tmp_path / "ct.dcm", RAMP12, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1024,
                  WindowCenter=40, WindowWidth=400)
    np.testing.assert_allclose(read_image(p), linear_window(2.0 * RAMP12 - 1024, 40, 400), atol=1e-6)


def test_rescale_without_window_is_minmax(tmp_path):
    p = write_dcm(tmp_path / "r.dcm", RAMP12, bits_stored=12, RescaleSlope=-1, RescaleIntercept=100)
    np.testing.assert_allclose(read_image(p), minmax(100.0 - RAMP12), atol=1e-6)   # a negative slope flips


def test_explicit_window_beats_file_window(tmp_path):
    p = write_dcm(tmp_path / "w.dcm", RAMP12, bits_stored=12, WindowCenter=[2000, 100], WindowWidth=[1000, 50])
    np.testing.assert_allclose(read_image(p), linear_window(RAMP12, 2000, 1000), atol=1e-6)  # first of multi-value
    np.testing.assert_allclose(read_image(p, window=(500, 301)), linear_window(RAMP12, 500, 301), atol=1e-6)
    with pytest.raises(ValueError, match="window must be"):
        read_image(p, window=(1,))


@pytest.mark.parametrize("func", ["LINEAR_EXACT", "SIGMOID"])
def test_voi_lut_functions(tmp_path, func):
    c, w = 1500.0, 700.0
    p = write_dcm(tmp_path / "f.dcm", RAMP12, bits_stored=12, WindowCenter=c, WindowWidth=w, VOILUTFunction=func)
    x = RAMP12.astype(np.float64)
    if func == "LINEAR_EXACT":
        want = np.where(x <= c - w / 2, 0, np.where(x > c + w / 2, 1, (x - c) / w + 0.5))
    else:
        want = 1 / (1 + np.exp(-4 * (x - c) / w))
    np.testing.assert_allclose(read_image(p), want, atol=1e-6)


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_normalised_by_lut_depth(tmp_path, vr):
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    lut = np.arange(255, -1, -1, dtype=np.uint16)         # a decreasing 8-bit LUT over inputs 0..255
    item.add_new("LUTData", vr, lut.tolist() if vr == "US" else lut.astype("<u2").tobytes())
    p = write_dcm(tmp_path / "lut.dcm", RAMP12, bits_stored=12, VOILUTSequence=Sequence([item]))
    x = RAMP12.astype(np.int64)
    want = (255 - np.clip(x, 0, 255)) / 255.0             # inputs beyond the LUT take its last entry
    np.testing.assert_allclose(read_image(p), want, atol=1e-6)


def test_signed_pixels(tmp_path):
    vals = np.linspace(-2048, 2047, 64 * 64).astype(np.int16).reshape(64, 64)
    stored = (vals.view(np.uint16) & 0x0FFF).view(np.int16)   # 12-bit two's complement in 16 bits
    p = write_dcm(tmp_path / "s.dcm", stored, bits_stored=12, RescaleIntercept=0, RescaleSlope=1)
    img = read_image(p)
    np.testing.assert_allclose(img, minmax(vals), atol=1e-6)
    p2 = write_dcm(tmp_path / "s2.dcm", stored, bits_stored=12, WindowCenter=0, WindowWidth=101)
    np.testing.assert_allclose(read_image(p2), linear_window(vals, 0, 101), atol=1e-6)


def test_8bit_dicom_and_color_dicom(tmp_path):
    g = gray(seed=1)
    np.testing.assert_allclose(read_image(write_dcm(tmp_path / "g.dcm", g)), minmax(g), atol=1e-6)
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lum = rgb.astype(np.float64) @ [0.299, 0.587, 0.114] / 255
    np.testing.assert_allclose(read_image(write_dcm(tmp_path / "rgb.dcm", rgb, photometric="RGB")), lum, atol=1e-5)
    from pydicom.pixels import convert_color_space
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    out = read_image(write_dcm(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    np.testing.assert_allclose(out, lum, atol=0.02)       # YBR round trip is lossy by rounding only


def test_compressed_dicom_with_and_without_decoder(tmp_path):
    from pydicom.pixels import get_decoder
    g = gray(seed=3)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG", quality=95)
    if get_decoder(JPEGBaseline8Bit).is_available:
        p = write_dcm(tmp_path / "jpg.dcm", g, syntax=JPEGBaseline8Bit, encapsulated=buf.getvalue())
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64)
        np.testing.assert_allclose(read_image(p), minmax(ref), atol=1e-5)
    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    p = write_dcm(tmp_path / "jls.dcm", g, syntax=JPEGLSLossless, encapsulated=b"\xff\xd8xx\xff\xd9")
    with pytest.raises(ImageReadError, match=r"jls\.dcm.*JPEG-LS.*no decoder") as e:
        read_image(p)
    assert e.value.path.endswith("jls.dcm")


def test_multiframe_truncated_and_non_dicom(tmp_path):
    with pytest.raises(ImageReadError, match=r"mf\.dcm.*multi-frame DICOM \(3 frames\)"):
        read_image(write_dcm(tmp_path / "mf.dcm", np.zeros((3, 64, 64), np.uint16), frames=3))
    good = write_dcm(tmp_path / "ok.dcm", RAMP12, bits_stored=12).read_bytes()
    (tmp_path / "trunc.dcm").write_bytes(good[:-1000])
    with pytest.raises(ImageReadError, match=r"trunc\.dcm.*(truncated|corrupt)"):
        read_image(tmp_path / "trunc.dcm")
    (tmp_path / "text.dcm").write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(ImageReadError, match=r"text\.dcm.*not a DICOM file"):
        read_image(tmp_path / "text.dcm")
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    with pytest.raises(ImageReadError, match=r"garbage\.dcm"):
        read_image(tmp_path / "garbage.dcm")
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "absent.dcm")
    with pytest.raises(ImageReadError, match="unsupported photometric interpretation 'PALETTE COLOR'"):
        read_image(write_dcm(tmp_path / "pal.dcm", gray(), photometric="PALETTE COLOR"))


def test_dicom_magic_without_suffix(tmp_path):
    p = write_dcm(tmp_path / "IM0001", RAMP12, bits_stored=12)
    assert D.is_dicom(p)
    np.testing.assert_allclose(read_image(p), minmax(RAMP12), atol=1e-6)
    assert [q.name for q in D.scan_images(tmp_path)] == ["IM0001"]


# ------------------------------------------------------------------------------------------------ Pillow decoding
def test_png_8bit_and_16bit_precision(tmp_path):
    g = gray(seed=4)
    np.testing.assert_allclose(read_image(write_png(tmp_path / "g.png", g)), g / 255.0, atol=1e-7)
    v16 = (np.arange(64 * 64).reshape(64, 64) + 30000).astype(np.uint16)   # neighbours differ by 1/65535
    img = read_image(write_png(tmp_path / "g16.png", v16))
    np.testing.assert_allclose(img, v16 / 65535.0, atol=1e-7)
    assert len(np.unique(img)) == 64 * 64                  # far more than 256 levels survive


def test_png_int32_mode_tiff(tmp_path):
    a = (np.arange(64 * 64).reshape(64, 64) * 10).astype(np.int32)
    p = tmp_path / "i.tif"
    Image.fromarray(a, mode="I").save(p)
    np.testing.assert_allclose(read_image(p), a / 65535.0, atol=1e-6)


def test_color_modes_become_gray(tmp_path):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64) / 255
    np.testing.assert_allclose(read_image(write_png(tmp_path / "rgb.png", rgb)), want, atol=1e-7)
    rgba = np.dstack([rgb, rng.integers(0, 256, (64, 64), dtype=np.uint8)])
    np.testing.assert_allclose(read_image(write_png(tmp_path / "rgba.png", rgba)), want, atol=1e-7)  # alpha ignored
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (64, 64) and out.dtype == np.float32 and 0 <= out.min() <= out.max() <= 1
    Image.fromarray(gray(seed=6)).convert("LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png"), gray(seed=6) / 255, atol=1e-7)


def test_jpeg_and_exif_orientation(tmp_path):
    a = np.zeros((64, 96), np.uint8)
    a[:, :10] = 255                                        # bright band on the left as stored
    write_png(tmp_path / "plain.jpg", a, quality=95)
    plain = read_image(tmp_path / "plain.jpg")
    assert plain.shape == (64, 96) and plain[:, :8].mean() > 0.9
    exif = Image.Exif()
    exif[0x0112] = 6                                       # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "rot.jpg", quality=95, exif=exif)
    rot = read_image(tmp_path / "rot.jpg")
    assert rot.shape == (96, 64)                           # displayed upright: height and width swap
    assert rot[:8, :].mean() > 0.9 and rot[-8:, :].mean() < 0.1   # the left band is now at the top


def test_pillow_failures(tmp_path):
    good = io.BytesIO()
    Image.fromarray(gray(seed=7)).save(good, "PNG")
    (tmp_path / "trunc.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"trunc\.png.*(truncated|corrupt)"):
        read_image(tmp_path / "trunc.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.png.*not an image"):
        read_image(tmp_path / "notes.png")
    frames = [Image.fromarray(gray(seed=i)) for i in range(3)]
    frames[0].save(tmp_path / "multi.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match=r"multi\.tif.*multi-frame image \(3 frames\)"):
        read_image(tmp_path / "multi.tif")
    write_png(tmp_path / "small.png", gray(32))
    with pytest.raises(ImageReadError, match=r"small\.png.*too small: 32x32"):
        read_image(tmp_path / "small.png", min_size=64)
    assert issubclass(ImageReadError, ValueError)


# ------------------------------------------------------------------------------------------------ metadata / PHI
PHI = dict(PatientName="Zyxwvut^Qwertyina", PatientBirthDate="19230405", InstitutionName="Secretville General",
           InstitutionAddress="12 Hidden Lane Springfield", ReferringPhysicianName="Phiphysician^Drew",
           AccessionNumber="ACC98765432", StudyDate="20190311", StudyTime="101112", SeriesDate="20190312",
           StudyInstanceUID="1.2.826.0.1.3680043.99999.1", SeriesInstanceUID="1.2.826.0.1.3680043.99999.2",
           StudyID="STUDYX4242", OtherPatientIDs="OTHERMRN777", PatientAddress="99 Nowhere Road",
           OperatorsName="Opname^Olga", StationName="STATIONQQ9", PatientComments="allergic to zorbicillin",
           StudyDescription="Chest for Qwertyina")
PHI_PATIENT_ID = "MRN-55501234"


def test_dicom_metadata_allow_list(tmp_path):
    p = write_dcm(tmp_path / "m.dcm", RAMP12, bits_stored=12, PatientID=PHI_PATIENT_ID, PatientSex="F",
                  PatientAge="006M", ViewPosition="AP", Modality="DX", Manufacturer="Acme", **PHI)
    meta = dicom_metadata(p, salt="s1")
    assert set(meta) == {"view", "modality", "manufacturer", "photometric", "rows", "columns", "bits_stored", "sex",
                         "age", "patient_id"}
    assert (meta["view"], meta["sex"], meta["age"], meta["modality"], meta["manufacturer"]) == ("AP", "F", 0.5, "DX", "Acme")
    assert (meta["rows"], meta["columns"], meta["bits_stored"], meta["photometric"]) == (64, 64, 12, "MONOCHROME2")
    assert meta["patient_id"] == hash_patient_id(PHI_PATIENT_ID, "s1") and meta["patient_id"].startswith("pid-")
    assert dicom_metadata(p, salt="s2")["patient_id"] != meta["patient_id"]
    for age, years in [("045Y", 45), ("010W", 70 / 365.25), ("003D", 3 / 365.25)]:
        assert D.parse_age(age) == pytest.approx(years)
    check_every_kind(CXRDataset.from_folder(tmp_path), view="acquisition", modality="acquisition",
                     manufacturer="source", photometric="acquisition", rows="acquisition", columns="acquisition",
                     bits_stored="acquisition", sex="demographic", age="demographic", source="source")


def test_no_phi_reaches_the_dataset(tmp_path):
    img = tmp_path / "imgs"
    img.mkdir()
    write_dcm(img / "case1.dcm", RAMP12, bits_stored=12, PatientID=PHI_PATIENT_ID, PatientSex="M", PatientAge="071Y",
              ViewPosition="PA", Modality="DX", **PHI)
    write_png(img / "other.png", gray(seed=8))
    ds = CXRDataset.from_folder(img, patient_salt="pepper")
    (tmp_path / "gen.csv").write_text("id,path,label:Edema\ncase1,imgs/case1.dcm,1\nother,imgs/other.png,0\n")
    ds2 = CXRDataset.from_csv(tmp_path / "gen.csv", patient_salt="pepper")  # CSV without sex/view: DICOM allow-list fills them
    for d in (ds, ds2):
        row = d.index.set_index("id").loc["case1"]
        assert (row["sex"], row["age"], row["view"]) == ("M", 71.0, "PA")
        assert row["patient_id"] == hash_patient_id(PHI_PATIENT_ID, "pepper")
        d.to_csv(tmp_path / "export.csv")
        texts = [str(v) for v in d.index.to_numpy().ravel()] + [str(c) for c in d.index.columns]
        texts += [(tmp_path / "export.csv").read_text(), repr(d), json.dumps(d[0][1], default=str)]
        blob = "\n".join(texts)
        for secret in [*PHI.values(), PHI_PATIENT_ID, "Qwertyina", "Zyxwvut", "Secretville", "55501234"]:
            assert secret not in blob, secret


def test_patient_salt_env_and_random_salt(tmp_path, monkeypatch):
    write_dcm(tmp_path / "a.dcm", RAMP12, bits_stored=12, PatientID="P-1")
    monkeypatch.setenv(D.PATIENT_SALT_ENV, "shared-salt")
    a, b = CXRDataset.from_folder(tmp_path), CXRDataset.from_folder(tmp_path)
    assert a.patient_ids[0] == b.patient_ids[0] == hash_patient_id("P-1", "shared-salt")
    monkeypatch.delenv(D.PATIENT_SALT_ENV)
    a, b = CXRDataset.from_folder(tmp_path), CXRDataset.from_folder(tmp_path)
    assert a.patient_ids[0] != b.patient_ids[0]            # random per-dataset salt
    assert a.fingerprint() == b.fingerprint()              # patient ids are not part of the fingerprint


# ------------------------------------------------------------------------------------------------ label readers
def rsna_fixture(root, with_bad_target=False):
    imgs = root / "stage_2_train_images"
    imgs.mkdir(parents=True)
    for pid, sex, age in [("aaa", "F", "033"), ("bbb", "M", "061"), ("ccc", "M", "045")]:
        with warnings.catch_warnings():                    # RSNA's ages lack the unit; pydicom warns on writing
            warnings.simplefilter("ignore")
            write_dcm(imgs / f"{pid}.dcm", gray(seed=len(pid)), PatientID=pid, PatientSex=sex, PatientAge=age,
                      ViewPosition="PA", Modality="CR", PatientName="Rsna^Person")
    rows = ["patientId,x,y,width,height,Target", "aaa,10,20,30,40,1", "aaa,50,20,30,40,1", "aaa,5,5,10,10,1",
            "bbb,,,,,0", "ccc,1,2,3,4,1"]
    if with_bad_target:
        rows.append("ccc,,,,,0")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "class.csv").write_text("patientId,class\naaa,Lung Opacity\naaa,Lung Opacity\nbbb,Normal\n"
                                    "ccc,Lung Opacity\n")
    return imgs


def test_rsna(tmp_path):
    imgs = rsna_fixture(tmp_path)
    t = read_rsna_labels(tmp_path / "labels.csv", tmp_path / "class.csv")
    assert t["id"].tolist() == ["aaa", "bbb", "ccc"] and list(t.index) == [2, 5, 6]
    assert t["Target"].tolist() == [1.0, 0.0, 1.0] and t["n_boxes"].tolist() == [3, 0, 1]
    assert json.loads(t["boxes"].iloc[0])[1] == [50, 20, 30, 40]
    assert t["rsna_class"].tolist() == ["Lung Opacity", "Normal", "Lung Opacity"]
    ds = CXRDataset.from_rsna(imgs, tmp_path / "labels.csv", tmp_path / "class.csv")
    assert ds.label_names == ["Target"] and len(ds) == 3
    assert ds.index["sex"].tolist() == ["F", "M", "M"] and ds.index["age"].tolist() == [33.0, 61.0, 45.0]
    assert ds.index["view"].tolist() == ["PA"] * 3 and ds.index["source"].tolist() == ["rsna"] * 3
    assert ds.patient_ids.tolist() == ["aaa", "bbb", "ccc"]   # RSNA's per-image anonymised ids are kept
    assert t.attrs["kinds"] == {"Target": "finding", "n_boxes": "finding", "boxes": "finding", "source": "source",
                                "rsna_class": "finding"}
    check_every_kind(ds, Target="finding", n_boxes="finding", rsna_class="finding", source="source",
                     view="acquisition", modality="acquisition", sex="demographic", age="demographic")


def test_rsna_inconsistent_target(tmp_path):
    imgs = rsna_fixture(tmp_path, with_bad_target=True)
    with pytest.raises(ValueError, match=r"labels\.csv row 6.*inconsistent Target for patientId 'ccc'"):
        read_rsna_labels(tmp_path / "labels.csv")
    with pytest.warns(UserWarning, match="1 item"):
        ds = CXRDataset.from_rsna(imgs, tmp_path / "labels.csv", on_error="skip")
    assert ds.ids == ["aaa", "bbb"]
    assert ds.skipped["row"].tolist() == [6] and "inconsistent Target" in ds.skipped["reason"].iloc[0]


def chexpert_fixture(root):
    top = root / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)

    def line(path, sex, age, fl, appa, **labels):
        vals = [labels.get(n.replace(" ", "_"), "") for n in CHEXPERT_LABELS]
        return ",".join([path, sex, str(age), fl, appa, *vals])
    rows = [line("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP",
                 No_Finding="", Cardiomegaly="1.0", Edema="-1.0", Pneumonia="0.0"),
            line("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", "",
                 Cardiomegaly="-1.0", Edema="0.0"),
            line("CheXpert-v1.0-small/train/patient00002/study3/view1_frontal.jpg", "Male", 41, "Frontal", "PA",
                 No_Finding="1.0"),
            line("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "Unknown", 0, "Frontal", "AP",
                 Edema="1")]
    for r in rows:
        write_png(root / r.split(",")[0], gray(seed=len(r)), quality=90)
    (top / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return top / "train.csv"


@pytest.mark.parametrize("policy,edema0,cardio1", [("nan", np.nan, np.nan), ("ones", 1.0, 1.0), ("zeros", 0.0, 0.0)])
def test_chexpert_uncertainty_policies(tmp_path, policy, edema0, cardio1):
    csv = chexpert_fixture(tmp_path)
    t = read_chexpert_labels(csv, uncertain=policy)
    assert t["id"].tolist()[:2] == ["patient00001_study1_view1_frontal", "patient00001_study1_view2_lateral"]
    assert t["patient_id"].tolist() == ["patient00001", "patient00001", "patient00002", "patient64541"]
    np.testing.assert_equal(t["Edema"].tolist(), [edema0, 0.0, np.nan, 1.0])
    np.testing.assert_equal(t["Cardiomegaly"].tolist(), [1.0, cardio1, np.nan, np.nan])
    np.testing.assert_equal(t["Pneumonia"].tolist(), [0.0, np.nan, np.nan, np.nan])   # blank = unknown
    assert t["view"].tolist() == ["AP", "L", "PA", "AP"]
    assert t["sex"].tolist()[:3] == ["F", "F", "M"] and pd.isna(t["sex"].iloc[3])
    assert t.attrs["label_names"] == list(CHEXPERT_LABELS)


def test_chexpert_both_root_layouts_and_bad_rows(tmp_path):
    csv = chexpert_fixture(tmp_path)
    a = CXRDataset.from_chexpert(tmp_path)                 # folder holding CheXpert-v1.0-small
    b = CXRDataset.from_chexpert(tmp_path / "CheXpert-v1.0-small", csv)   # the folder itself
    assert len(a) == len(b) == 4 and a.paths == b.paths and a.fingerprint() != ""
    with pytest.raises(ValueError, match="uncertain must be"):
        read_chexpert_labels(csv, uncertain="maybe")
    text = csv.read_text().splitlines()
    text[2] = text[2].replace("Lateral,,", "Lateral,,2.0", 1)   # No Finding = 2.0 on row 3
    csv.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"train\.csv row 3: No Finding is '2.0'"):
        read_chexpert_labels(csv)
    with pytest.warns(UserWarning):
        ds = CXRDataset.from_chexpert(tmp_path, on_error="skip")
    assert len(ds) == 3 and ds.skipped["row"].tolist() == [3]
    check_every_kind(ds, **{"Support Devices": "hardware", "Edema": "finding", "No Finding": "finding",
                            "view": "acquisition", "frontal_lateral": "acquisition", "sex": "demographic",
                            "age": "demographic", "source": "source"})


def nih_fixture(root):
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
    rows = ["00000001_000.png,Cardiomegaly|Emphysema,0,1,57,M,PA,2682,2749,0.143,0.143,",
            "00000001_001.png,No Finding,1,1,58,M,PA,2894,2729,0.143,0.143,",
            "00000002_000.png,Effusion|Infiltration|Mass,0,2,081Y,F,AP,2500,2048,0.168,0.168,",
            "00000003_000.png,Hernia,0,3,77,F,PA,2048,2500,0.168,0.168,"]
    for i, r in enumerate(rows):
        write_png(root / f"images_00{i % 2 + 1}" / "images" / r.split(",")[0], gray(seed=i))
    write_png(root / "images_001" / "images" / "99999999_000.png", gray(seed=9))   # not in the CSV
    (root / "Data_Entry_2017_v2020.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return root / "Data_Entry_2017_v2020.csv"


def test_nih(tmp_path):
    csv = nih_fixture(tmp_path)
    t = read_nih_labels(csv)
    lab = t[list(NIH_LABELS)]
    assert lab.loc[2, ["Cardiomegaly", "Emphysema"]].tolist() == [1, 1] and lab.loc[2].sum() == 2
    assert lab.loc[3].sum() == 0                            # No Finding: all 14 zero, none unknown
    assert lab.loc[4, ["Effusion", "Infiltration", "Mass"]].tolist() == [1, 1, 1] and lab.loc[4].sum() == 3
    assert t["age"].tolist() == [57.0, 58.0, 81.0, 77.0] and t["follow_up"].tolist() == [0, 1, 0, 0]
    assert t["patient_id"].tolist() == ["1", "1", "2", "3"] and "Unnamed: 11" not in t.columns
    ds = CXRDataset.from_nih(tmp_path)                      # CSV found by name, images found in nested folders
    assert len(ds) == 4 and ds.unreferenced == 1 and "1 image files" in repr(ds)
    assert all(Path(p).is_file() for p in ds.paths) and ds.index["source"].eq("nih").all()
    check_every_kind(ds, Hernia="finding", follow_up="finding", view="acquisition", orig_width="acquisition",
                     pixel_spacing_x="acquisition", pixel_spacing_y="acquisition", sex="demographic", source="source")


def test_nih_unknown_finding(tmp_path):
    csv = nih_fixture(tmp_path)
    csv.write_text(csv.read_text().replace("Hernia,0,3", "Hernia|Dragon,0,3"))
    with pytest.raises(ValueError, match=r"row 5: unknown finding\(s\) \['Dragon'\]"):
        read_nih_labels(csv)
    with pytest.warns(UserWarning):
        ds = CXRDataset.from_nih(tmp_path, on_error="skip")
    assert len(ds) == 3 and ds.skipped["row"].tolist() == [5]


def test_cxr_demo_format(tmp_path):
    for i in range(3):
        write_png(tmp_path / "images" / f"d{i}.png", gray(seed=i))
    (tmp_path / "metadata.csv").write_text(
        "image_id,file,dataset,license_class,view,sex,age,finding,finding_group,patient_id,orig_width\n"
        "d0,images/d0.png,NIH ChestX-ray14,permissive,PA,M,64,Effusion|Mass,other abnormal,nih-1,1024\n"
        "d1,images/d1.png,COVID-19 collection,noncommercial-sharealike,L,unknown,,COVID-19,covid-19,ieee-2,800\n"
        "d2,images/d2.png,NIH ChestX-ray14,permissive,unknown,F,30,No Finding,normal,nih-3,1024\n")
    t = read_cxr_demo_metadata(tmp_path / "metadata.csv")
    assert t.attrs["label_names"] == ["COVID-19", "Effusion", "Mass", "No Finding"]
    assert t[["Effusion", "Mass", "COVID-19"]].iloc[0].tolist() == [1, 1, 0]
    assert pd.isna(t["sex"].iloc[1]) and pd.isna(t["view"].iloc[2]) and pd.isna(t["age"].iloc[1])
    assert t["source"].tolist()[0] == "NIH ChestX-ray14" and t["orig_width"].tolist() == [1024, 800, 1024]
    ds = CXRDataset.from_cxr_demo(tmp_path)
    assert ds.ids == ["d0", "d1", "d2"] and ds.patient_ids.tolist() == ["nih-1", "ieee-2", "nih-3"]
    assert {"license_class", "finding", "finding_group"} <= set(ds.meta.columns)
    check_every_kind(ds, **{"COVID-19": "finding", "No Finding": "finding", "license_class": "source",
                            "finding": "finding", "finding_group": "finding", "orig_width": "acquisition",
                            "view": "acquisition", "sex": "demographic", "source": "source"})


def test_generic_format_and_detection(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", gray(seed=1))
    write_png(tmp_path / "imgs" / "b.png", gray(seed=2))
    abs_c = write_png(tmp_path / "elsewhere" / "c.png", gray(seed=3))
    (tmp_path / "ds.csv").write_text("id,path,patient_id,label:Edema,label:Mass,view,site,Extra\n"
                                     f"a,imgs/a.png,P1,1,,PA,007,1\nb,imgs/b.png,,0,1,AP,008,0\nc,{abs_c},P1,,0,,,1\n")
    t = read_medinterp_csv(tmp_path / "ds.csv", label_columns=["Extra"])
    assert t.attrs["label_names"] == ["Edema", "Mass", "Extra"]
    assert t["site"].tolist()[:2] == ["007", "008"]          # zero-padded codes stay text
    ds = CXRDataset.from_csv(tmp_path / "ds.csv")
    assert ds.patient_ids.tolist() == ["P1", "b", "P1"]    # a blank patient id -> the image id
    assert ds.label_names == ["Edema", "Mass"] and ds.paths[2] == str(abs_c)
    np.testing.assert_equal(ds.labels.to_numpy(), [[1, np.nan], [0, 1], [np.nan, 0]])
    assert detect_csv_format(tmp_path / "ds.csv") == "medinterp"
    (tmp_path / "odd.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_csv_format(tmp_path / "odd.csv")
    with pytest.raises(ValueError, match="unknown format"):
        CXRDataset.from_folder(tmp_path, tmp_path / "ds.csv", format="dicomdir")
    ds_sel = CXRDataset.from_folder(tmp_path, tmp_path / "ds.csv", label_columns=["Extra"])
    assert ds_sel.label_names == ["Edema", "Mass", "Extra"]
    check_every_kind(ds, Edema="finding", Mass="finding", view="acquisition", site="source", Extra="other",
                     age="demographic")
    check_every_kind(ds_sel, Extra="finding")                # a label now: labels default to findings


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("fmt,header", [("medinterp", "id,label:Edema\na,1\n"),
                                        ("rsna", "patientId,x,y,width,height\naaa,1,2,3,4\n"),
                                        ("chexpert", "Path,Sex,No Finding\nx/patient1/study1/view1_frontal.jpg,M,1\n"),
                                        ("nih", "Image Index,Patient ID\na.png,1\n"),
                                        ("cxr-demo", "image_id,file\nd0,images/d0.png\n")])
def test_missing_required_columns(tmp_path, fmt, header, on_error):
    (tmp_path / "bad.csv").write_text(header)
    with pytest.raises(ValueError, match=r"bad\.csv lacks required column"):
        CXRDataset.from_folder(tmp_path, tmp_path / "bad.csv", format=fmt, on_error=on_error)


# ------------------------------------------------------------------------------------------------ bad input matrix
def bad_case(root, case):
    "Three good images + one bad item on CSV row 5; returns (csv, name of the bad file, reason regex)."
    imgs = root / "imgs"
    for n in "abc":
        write_png(imgs / f"{n}.png", gray(seed=ord(n)))
    bad_id, bad_file = "d", "d.png"
    if case == "corrupt_png":
        good = io.BytesIO()
        Image.fromarray(gray(seed=1)).save(good, "PNG")
        (imgs / bad_file).write_bytes(good.getvalue()[:300])
        reason = "truncated|corrupt"
    elif case == "not_an_image":
        (imgs / bad_file).write_text("nope")
        reason = "not an image"
    elif case == "truncated_dicom":
        bad_file = "d.dcm"
        full = write_dcm(imgs / bad_file, RAMP12, bits_stored=12).read_bytes()
        (imgs / bad_file).write_bytes(full[: len(full) - 2000])
        reason = "truncated|corrupt"
    elif case == "not_dicom":
        bad_file = "d.dcm"
        (imgs / bad_file).write_text("plain text with a DICOM suffix")
        reason = "not a DICOM file"
    elif case == "multiframe":
        bad_file = "d.dcm"
        write_dcm(imgs / bad_file, np.zeros((2, 64, 64), np.uint16), frames=2)
        reason = "multi-frame"
    elif case == "too_small":
        write_png(imgs / bad_file, gray(40))
        reason = "too small: 40x40"
    elif case == "missing_file":
        reason = "file not found"
    elif case == "duplicate_id":
        write_png(imgs / bad_file, gray(seed=9))
        bad_id, reason = "a", "duplicate"
    elif case == "bad_label":
        write_png(imgs / bad_file, gray(seed=9))
        reason = "label 'Edema' is 'maybe'"
    label = "maybe" if case == "bad_label" else "1"
    (root / "ds.csv").write_text("id,path,label:Edema\na,imgs/a.png,0\nb,imgs/b.png,1\nc,imgs/c.png,\n"
                                 f"{bad_id},imgs/{bad_file},{label}\n")
    return root / "ds.csv", bad_file, reason


BAD_CASES = ["corrupt_png", "not_an_image", "truncated_dicom", "not_dicom", "multiframe", "too_small", "missing_file",
             "duplicate_id", "bad_label"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_naming_file_row_and_reason(tmp_path, case):
    csv, bad_file, reason = bad_case(tmp_path, case)
    with pytest.raises(ValueError) as e:
        CXRDataset.from_csv(csv)
    msg = str(e.value)
    assert re.search(r"\brows? \[?[\d, ]*\b5\b", msg) and re.search(reason, msg), msg
    if case not in ("duplicate_id", "bad_label"):
        assert isinstance(e.value, ImageReadError) and bad_file in msg
    else:
        assert "ds.csv" in msg


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_skip_records_it(tmp_path, case):
    csv, bad_file, reason = bad_case(tmp_path, case)
    with pytest.warns(UserWarning, match="1 item"):
        ds = CXRDataset.from_csv(csv, on_error="skip")
    assert ds.ids == ["a", "b", "c"] and len(ds.skipped) == 1
    rec = ds.skipped.iloc[0]
    assert list(ds.skipped.columns) == ["path", "reason", "row"] and rec["row"] == 5
    assert re.search(reason, rec["reason"]), rec["reason"]
    if case != "bad_label":
        assert str(rec["path"]).endswith(bad_file)
    assert "skipped: 1" in repr(ds)


def test_bad_input_in_folder_mode(tmp_path):
    for n in "ab":
        write_png(tmp_path / f"{n}.png", gray(seed=ord(n)))
    (tmp_path / "c.dcm").write_text("not dicom")
    with pytest.raises(ImageReadError, match=r"c\.dcm.*not a DICOM file"):
        CXRDataset.from_folder(tmp_path)
    with pytest.warns(UserWarning):
        ds = CXRDataset.from_folder(tmp_path, on_error="skip")
    assert ds.ids == ["a", "b"] and pd.isna(ds.skipped["row"].iloc[0])
    ds = CXRDataset.from_folder(tmp_path, verify="none")    # trusting the file list: no check
    assert len(ds) == 3
    with pytest.raises(ValueError, match="on_error must be"):
        CXRDataset.from_folder(tmp_path, on_error="ignore")
    with pytest.raises(ValueError, match="verify must be"):
        CXRDataset.from_folder(tmp_path, verify="some")


def test_verify_header_reads_no_pixels(tmp_path):
    good = io.BytesIO()
    Image.fromarray(gray(seed=1)).save(good, "PNG")
    (tmp_path / "t.png").write_bytes(good.getvalue()[:-200])   # header intact, pixels cut
    write_png(tmp_path / "small.png", gray(20))
    assert len(CXRDataset.from_folder(tmp_path, verify="header", min_size=10)) == 2
    with pytest.raises(ImageReadError, match="too small"):
        CXRDataset.from_folder(tmp_path, verify="header")  # sizes are still checked
    with pytest.raises(ImageReadError, match=r"t\.png"):
        CXRDataset.from_folder(tmp_path, min_size=10)       # full decode finds the truncation


def test_folder_ids_and_constructor_validation(tmp_path):
    write_png(tmp_path / "x" / "img.png", gray(seed=1))
    write_png(tmp_path / "y" / "img.png", gray(seed=2))
    write_png(tmp_path / "y" / "other.jpg", gray(seed=3), quality=90)
    ds = CXRDataset.from_folder(tmp_path)
    assert ds.ids == ["x__img", "y__img", "y__other"] and ds.label_names == []
    idx = pd.DataFrame({"id": ["a", "b", "a"], "path": ["1.png", "2.png", "3.png"], "L": [1.0, 0.0, np.nan]})
    with pytest.raises(ValueError, match=r"duplicated id\(s\): \['a'\]"):
        CXRDataset(idx, ["L"], root=tmp_path)
    ok = CXRDataset(idx, ["L"], root=tmp_path, on_error="skip")
    assert ok.ids == ["a", "b"] and ok.skipped["reason"].tolist() == ["duplicate id 'a'"]
    with pytest.raises(ValueError, match="labels are 1, 0 or NaN"):
        CXRDataset(idx.assign(L=[2.0, 0, 1], id=["a", "b", "c"]), ["L"])
    with pytest.raises(ValueError, match="not in the index"):
        CXRDataset(idx, ["M"])
    with pytest.raises(ValueError, match="lacks required column"):
        CXRDataset(idx.drop(columns="path"), [])


# ------------------------------------------------------------------------------------------------ dataset API
@pytest.fixture
def small_ds(tmp_path):
    for i in range(6):
        write_png(tmp_path / "imgs" / f"i{i}.png", gray(seed=i))
    rows = "\n".join(f"i{i},imgs/i{i}.png,p{i // 2},{['1', '0', ''][i % 3]},{'PA' if i % 2 else 'AP'},{40 + i}"
                     for i in range(6))
    (tmp_path / "ds.csv").write_text("id,path,patient_id,label:Edema,view,age\n" + rows + "\n")
    return CXRDataset.from_csv(tmp_path / "ds.csv", name="small")


def test_dataset_api(small_ds):
    ds = small_ds
    assert len(ds) == 6 and ds.ids[:2] == ["i0", "i1"] and ds.label_names == ["Edema"]
    img, row = ds[1]
    assert img.dtype == np.float32 and img.shape == (64, 64) and 0 <= img.min() <= img.max() <= 1
    assert row["id"] == "i1" and row["Edema"] == 0.0 and row["view"] == "PA" and row["patient_id"] == "p0"
    assert ds[-1][1]["id"] == "i5"
    np.testing.assert_array_equal(ds.image(2), ds[2][0])
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(TypeError, match="subset"):
        ds[1:3]
    assert list(ds.index.columns[:4]) == ["id", "path", "patient_id", "Edema"]
    assert list(ds.meta.columns) == ["view", "age", "sex", "source"]
    assert ds.labels.shape == (6, 1) and ds.labels["Edema"].isna().sum() == 2
    view = ds.index
    view.loc[0, "id"] = "changed"
    assert ds.ids[0] == "i0"                               # editing a returned table leaves the dataset alone
    sub = ds.subset([5, 0])
    assert sub.ids == ["i5", "i0"] and len(ds.subset(np.arange(6) % 2 == 0)) == 3 and len(ds.subset(slice(1, 3))) == 2
    assert ds.label_counts().loc["Edema"].tolist() == [2, 2, 2]
    r = repr(ds)
    assert "'small'" in r and "6 images" in r and "3 patients" in r and "Edema 2" in r


def test_to_csv_round_trip_and_fingerprint(small_ds, tmp_path):
    ds = small_ds
    f0 = ds.fingerprint()
    assert CXRDataset.from_csv(tmp_path / "ds.csv", name="other").fingerprint() == f0   # stable across loads
    out = tmp_path / "export" / "again.csv"
    ds.to_csv(out)
    text = out.read_text()
    assert text.splitlines()[0] == "id,path,patient_id,label:Edema,view,age,sex,source"
    assert "../imgs/i0.png" in text and ",1," in text and ".0," not in text.splitlines()[1].split(",")[3]
    back = CXRDataset.from_folder(tmp_path, out)
    assert back.ids == ds.ids and back.paths == ds.paths and back.patient_ids.tolist() == ds.patient_ids.tolist()
    pd.testing.assert_frame_equal(back.labels, ds.labels)
    pd.testing.assert_frame_equal(back.meta, ds.meta, check_dtype=False)
    assert back.fingerprint() == f0
    # each kind of change moves the fingerprint
    idx = ds.index
    variants = [idx.assign(Edema=idx["Edema"].fillna(1)), idx.assign(age=idx["age"] + 1),
                idx.assign(id=[f"j{i}" for i in range(6)]), idx.iloc[::-1]]
    for v in variants:
        assert CXRDataset(v, ["Edema"], root=ds.root).fingerprint() != f0
    moved = idx.assign(path=[p.replace("/imgs/", "/imgs2/") for p in idx["path"]])
    assert CXRDataset(moved, ["Edema"], root=ds.root).fingerprint() != f0
    assert CXRDataset(idx.assign(patient_id="zzz"), ["Edema"], root=ds.root).fingerprint() == f0


def test_kinds_declared_by_user_and_sidecar(small_ds, tmp_path):
    assert small_ds.kinds == {"Edema": "finding", "view": "acquisition", "age": "demographic", "sex": "demographic",
                              "source": "source"}
    write_kinds(tmp_path, {"view": "hardware", "age": "other"})          # the sidecar beside ds.csv
    assert json.loads((tmp_path / KINDS_FILE).read_text()) == {"age": "other", "view": "hardware"}
    side = CXRDataset.from_csv(tmp_path / "ds.csv")
    assert (side.kinds["view"], side.kinds["age"], side.kinds["Edema"]) == ("hardware", "other", "finding")
    user = CXRDataset.from_csv(tmp_path / "ds.csv", kinds={"view": "acquisition", "Edema": "anatomy"})   # user wins
    assert (user.kinds["view"], user.kinds["age"], user.kinds["Edema"]) == ("acquisition", "other", "anatomy")
    assert user.subset([3, 1]).kinds == user.kinds                       # subsets keep the kinds
    idx = small_ds.index
    assert CXRDataset(idx, ["Edema"], kinds={"age": "source"}).kinds["age"] == "source"
    assert CXRDataset(idx, ["Edema"]).kinds["age"] == "demographic"     # a ready-made index: defaults again


@pytest.mark.parametrize("kinds,exc,match", [
    ({"veiw": "acquisition"}, ValueError, r"kind mapping names unknown column 'veiw'; columns: \['Edema', 'view'"),
    ({"view": "hardwre"}, ValueError, r"unknown kind 'hardwre' for column 'view'; kinds: \('acquisition'"),
    ({"id": "source"}, ValueError, "unknown column 'id'"),
    ([("view", "acquisition")], TypeError, "must be a mapping"),
    ({"view": 3}, TypeError, "'view': 3"),
])
def test_bad_kind_mappings_name_the_value(small_ds, tmp_path, kinds, exc, match):
    with pytest.raises(exc, match=match):
        CXRDataset.from_csv(tmp_path / "ds.csv", kinds=kinds)
    with pytest.raises(exc, match=match):
        CXRDataset(small_ds.index, ["Edema"], kinds=kinds)
    with pytest.raises(exc, match=match):
        check_kinds(kinds, ["Edema", "view", "age"])


def test_bad_sidecar_names_the_file(small_ds, tmp_path):
    (tmp_path / KINDS_FILE).write_text('{"Edemaa": "finding"}')
    with pytest.raises(ValueError, match=r"kinds\.json: kind mapping names unknown column 'Edemaa'"):
        CXRDataset.from_csv(tmp_path / "ds.csv")
    (tmp_path / KINDS_FILE).write_text('{"view": "camera"}')
    with pytest.raises(ValueError, match=r"kinds\.json: unknown kind 'camera' for column 'view'"):
        CXRDataset.from_csv(tmp_path / "ds.csv")
    (tmp_path / KINDS_FILE).write_text("{view: acquisition")
    with pytest.raises(ValueError, match=r"kinds\.json is not valid JSON"):
        CXRDataset.from_csv(tmp_path / "ds.csv")
    (tmp_path / KINDS_FILE).write_text('["view"]')
    with pytest.raises(TypeError, match=r"kinds\.json: kinds must be a mapping"):
        CXRDataset.from_csv(tmp_path / "ds.csv")


def test_column_kinds_precedence():
    cols, labels = ["Pleural Effusion", "Support Devices", "Patient Age", "resize_method", "x1"], ["Pleural Effusion", "Support Devices"]
    assert column_kinds(cols, labels) == {"Pleural Effusion": "finding", "Support Devices": "hardware",
                                          "Patient Age": "demographic", "resize_method": "acquisition", "x1": "other"}
    assert column_kinds(cols, labels, {"x1": "anatomy", "Patient Age": "other"})["x1"] == "anatomy"
    assert column_kinds(cols, labels, {"Patient Age": "other"})["Patient Age"] == "other"
    assert check_kinds(None, cols) == {} and set(D.DEFAULT_KINDS.values()) <= set(KINDS)


def test_cxr_demo_dir_env(tmp_path, monkeypatch):
    (tmp_path / "metadata.csv").write_text("image_id,file,finding\n")
    monkeypatch.setenv(D.CXR_DEMO_ENV, str(tmp_path))
    assert cxr_demo_dir() == tmp_path.resolve()


# ------------------------------------------------------------------------------------------------ patient split
def check_split(pids, sp, fr):
    pids = np.asarray(pids, dtype=object)
    allrows = np.sort(np.concatenate(list(sp.values())))
    np.testing.assert_array_equal(allrows, np.arange(len(pids)))          # every row exactly once
    owner = {}
    for name, rows in sp.items():
        for p in set(pids[rows]):
            assert owner.setdefault(p, name) == name, f"patient {p} in {owner[p]} and {name}"
    counts = pd.Series(pids).value_counts()
    for (name, rows), f in zip(sp.items(), fr):
        assert abs(len(rows) - f * len(pids)) <= (len(fr) - 1) * counts.max() + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 25), min_size=1, max_size=150), st.integers(0, 2 ** 31),
       st.sampled_from([(0.8, 0.2), (0.6, 0.2, 0.2), (0.5, 0.5), (0.9, 0.05, 0.05)]))
def test_patient_split_properties(pids, seed, fr):
    sp = patient_split(pids, fr, seed=seed)
    check_split(pids, sp, fr)
    again = patient_split(pids, fr, seed=seed)
    assert all(np.array_equal(sp[k], again[k]) for k in sp)                  # deterministic
    renamed = [hash_patient_id(p, "another-salt") for p in pids]             # same grouping, other strings
    other = patient_split(renamed, fr, seed=seed)
    assert all(np.array_equal(sp[k], other[k]) for k in sp)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.sampled_from([0.0, 1.0, np.nan])), min_size=2, max_size=120),
       st.integers(0, 1000))
def test_patient_split_stratified(rows, seed):
    pids = [p for p, _ in rows]
    y = [v for _, v in rows]
    sp = patient_split(pids, {"a": 0.7, "b": 0.3}, seed=seed, stratify=y)
    np.testing.assert_array_equal(np.sort(np.concatenate(list(sp.values()))), np.arange(len(pids)))
    assert not set(np.asarray(pids)[sp["a"]]) & set(np.asarray(pids)[sp["b"]])


def test_patient_split_dataset_and_errors(small_ds):
    sp = patient_split(small_ds, (0.5, 0.5), seed=3)
    check_split(small_ds.patient_ids, sp, (0.5, 0.5))
    assert list(sp) == ["train", "val"] and list(patient_split(small_ds, (0.4, 0.3, 0.3))) == ["train", "val", "test"]
    assert sum(map(len, patient_split(small_ds, (0.5, 0.5), stratify="Edema").values())) == 6
    seeds = {tuple(patient_split(small_ds, (0.5, 0.5), seed=s)["val"]) for s in range(20)}
    assert len(seeds) > 1                                                     # the seed matters
    with pytest.raises(ValueError, match="sum to 1"):
        patient_split(small_ds, (0.5, 0.4))
    with pytest.raises(ValueError, match="not a label"):
        patient_split(small_ds, stratify="Mass")
    with pytest.raises(ValueError, match="blank or missing"):
        patient_split(["a", None])


# ------------------------------------------------------------------------------------------------ real data
REPO = Path(__file__).resolve().parent.parent
IN_REPO = REPO / "data" / "cxr-demo"


def check_cxr_demo(ds, n, patients, covid, normal, views):
    assert len(ds) == n and len(ds.skipped) == 0 and ds.unreferenced == 0
    assert ds.index["patient_id"].nunique() == patients
    assert {"COVID-19", "No Finding", "Effusion", "Pneumonia"} <= set(ds.label_names)
    assert (ds.labels.sum(axis=1) >= 1).all() and not ds.labels.isna().any().any()
    assert ds.labels["COVID-19"].sum() == covid and ds.labels["No Finding"].sum() == normal
    assert {"view", "sex", "age", "source", "license_class", "finding_group"} <= set(ds.meta.columns)
    check_every_kind(ds, **{"COVID-19": "finding", "resize_method": "acquisition", "modality": "acquisition",
                            "qc_notes": "acquisition", "license": "source", "license_class": "source",
                            "location": "source", "source_repo": "source", "finding_group": "finding",
                            "went_icu": "finding", "intubated": "hardware", "age": "demographic"})
    assert "other" not in ds.kinds.values()                   # every column of cxr-demo has a meaningful kind
    assert set(ds.index["view"].dropna()) <= views
    assert set(ds.index["sex"].dropna()) <= {"M", "F"}
    for i in range(0, n, 40):
        img, row = ds[i]
        assert img.shape == (256, 256) and img.dtype == np.float32
        assert 0.0 <= img.min() < img.max() <= 1.0
    sp = patient_split(ds, (0.8, 0.2), seed=0)
    check_split(ds.patient_ids, sp, (0.8, 0.2))
    assert not set(ds.patient_ids[sp["train"]]) & set(ds.patient_ids[sp["val"]])


def test_cxr_demo_in_repository(monkeypatch):
    "The repository's own 241 permissive images: found first, all read, every one attributed."
    monkeypatch.delenv(D.CXR_DEMO_ENV, raising=False)
    assert cxr_demo_dir() == IN_REPO.resolve()
    ds = CXRDataset.from_cxr_demo(progress=False)
    check_cxr_demo(ds, 241, 206, 80, 48, {"PA", "AP"})
    assert ds.fingerprint() == CXRDataset.from_cxr_demo(IN_REPO, verify="header").fingerprint()
    meta = pd.read_csv(IN_REPO / "metadata.csv", dtype=str, keep_default_na=False)
    assert (meta["license_class"] == "permissive").all() and not meta["license"].str.contains("NC").any()
    files = sorted(p.name for p in (IN_REPO / "images").iterdir())
    assert files == sorted(Path(f).name for f in meta["file"])               # no image without its row, and back
    att = pd.read_csv(IN_REPO / "ATTRIBUTION.csv", dtype=str, keep_default_na=False)
    assert att["image_id"].tolist() == meta["image_id"].tolist()              # every image attributed, in order
    assert (att[["file", "dataset", "license", "original_url", "doi"]].to_numpy()
            == meta[["file", "dataset", "license", "original_url", "doi"]].to_numpy()).all()
    assert all(s.startswith("https://github.com/") and c in s and p in s
               for s, c, p in zip(att["source"], meta["source_commit"], meta["source_path"]))
    readme = (IN_REPO / "README.md").read_text(encoding="utf-8")
    for d, n in meta["dataset"].value_counts().items():                      # the README's counts are the data's
        assert f"| {n} |" in readme and d.split(" (")[0].split(" COVID")[0] in readme


def test_cxr_demo_full_set():
    "The full 359-image set (adding the CC BY-NC-SA part), when it sits beside the checkout or in $MEDINTERP_CXR_DEMO."
    root = cxr_demo_dir(full=True)
    if root is None or root == IN_REPO.resolve():
        pytest.skip("the full cxr-demo set is not beside this checkout (set MEDINTERP_CXR_DEMO)")
    ds = CXRDataset.from_cxr_demo(root, progress=False)
    check_cxr_demo(ds, 359, 270, 147, 50, {"PA", "AP", "L", "AP Supine"})
    assert set(CXRDataset.from_cxr_demo(progress=False).ids) < set(ds.ids)
