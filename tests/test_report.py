"""The HTML report and PNG export: self-contained (no external references, no network in a real browser), escaped,
free of PHI, complete (every pair, direction and SAE), atomic; PNG export of grids and snapshots."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medinterp.report as report
from medinterp.data import CXRDataset
from medinterp.phantoms import make_phantoms
from medinterp.rdx import RDXConfig, snapshot
from medinterp.data import KINDS
from medinterp.report import esc, export_html, export_png
from medinterp.sae import SAEConfig
from medinterp.study import Study, StudyConfig
from test_extract import tiny_backbone

N = 40
PAYLOAD = "<script>alert(1)</script>"          # planted everywhere text from data can reach the page
LABEL = f"opacity{PAYLOAD}"
# paper mode, no quality flags: exactly 3 reported concepts per direction (flags are tested in test_rdx_quality)
RDX = RDXConfig(n_clusters=3, grid_size=4, mode="paper", stability_runs=0, min_size=1, max_share=1.0)
SAE_CFG = SAEConfig(architecture="topk", expansion=2, k=4, epochs=2, batch_size=16, seed=0)
DIRECTIONS = ("10", "01")


class Page(HTMLParser):
    "Tags with their attributes, the text of every script element, and the page's text."
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self.text, self._in = [], [], [], None
        self.feed(text); self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script": self._in = [dict(attrs), ""]

    def handle_endtag(self, tag):
        if tag == "script" and self._in is not None: self.scripts.append(tuple(self._in)); self._in = None

    def handle_data(self, data):
        if self._in is not None: self._in[1] += data
        else: self.text.append(data)

    @property
    def ids(self): return {a["id"] for _, a in self.tags if "id" in a}
    def refs(self): return [(t, k, a[k]) for t, a in self.tags for k in ("src", "href", "srcset", "action", "poster", "data") if k in a]
    def images(self): return [a["src"] for t, a in self.tags if t == "img"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A study with a planted payload in the study name, the dataset name, a label column, a metadata column and a
    concept name, an unreadable image (row 7), an RDX sweep and one SAE; exported with default options."""
    root = tmp_path_factory.mktemp("report")
    ds = make_phantoms(N, size=64, seed=3, out_dir=root / "phantoms", flip=0.5, opacity=0.5)
    with open(ds.paths[7], "wb") as f: f.write(b"not a png")
    index = ds.index.rename(columns={"opacity": LABEL})
    index["site"] = np.where(np.arange(N) % 2 == 0, PAYLOAD, "north & south")
    ds = CXRDataset(index, [LABEL if n == "opacity" else n for n in ds.label_names], root=ds.root, name=f"phantoms{PAYLOAD}")
    s = Study.create(root / "s", StudyConfig(name=f"t{PAYLOAD}", backbone="tiny", dataset=f"phantoms {PAYLOAD}", thumb_size=32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.extract(ds, tiny_backbone(2), on_error="skip", pooling=("cls", "mean"), batch_size=8, progress=False)
    sweep = s.run_rdx(RDX, progress=False)
    s.train_sae(config=SAE_CFG, progress=False)
    cs = sweep.concepts(0, "10")
    cs.with_names({cs[0].key: f"named {PAYLOAD}"}).save(sweep.path / sweep.record["pairs"][0]["dir"] / "concepts_10", overwrite=True)
    out = s.export_html(root / "report.html", progress=False)
    return s, ds, out, out.read_text(encoding="utf-8")


def test_payloads_stay_text(built):
    s, ds, out, page = built
    assert PAYLOAD not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    p = Page(page)
    text = "".join(p.text)
    for planted in (f"t{PAYLOAD}", f"named {PAYLOAD}", LABEL, f"phantoms{PAYLOAD}"):
        assert planted in text, planted                         # shown, as text
    # the only scripts: the images' metadata (JSON) and the page's own enlarge script; none has a src
    kinds = [(a.get("id"), a.get("type")) for a, _ in p.scripts]
    assert kinds == [("image-meta", "application/json"), (None, None)]
    assert not any("src" in a for a, _ in p.scripts)
    assert not any(k.lower().startswith("on") for _, a in p.tags for k in a)         # no event handlers
    assert not any(PAYLOAD in body for a, body in p.scripts)     # not even inside the JSON ...
    meta = json.loads(p.scripts[0][1])
    assert any(f"site={PAYLOAD}" in v for v in meta.values())     # ... which holds it as data, set as text by the script
    assert "textContent" in p.scripts[1][1] and "innerHTML" not in p.scripts[1][1]


def test_every_reference_is_inside_the_file(built):
    _, _, _, page = built
    p = Page(page)
    refs = p.refs()
    assert refs
    for tag, attr, v in refs:
        assert v.startswith("data:image/png;base64,") or v.startswith("#"), (tag, attr, v[:80])
    targets = {v[1:] for _, _, v in refs if v.startswith("#")}
    assert targets <= p.ids, targets - p.ids
    assert not {"link", "iframe", "object", "embed", "base", "form", "audio", "video", "source"} & {t for t, _ in p.tags}
    urls = re.findall(r"url\(([^)]*)\)", page)
    assert urls and all(u.startswith(('"data:image/webp;base64,', '"data:image/jpeg;base64,')) for u in urls)
    assert "@import" not in page and "http://" not in page and "https://" not in page and "//cdn" not in page
    csp = [a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "connect-src 'none'" in csp[0] and "unsafe-eval" not in csp[0]
    assert "plotly" not in page.lower()


def test_each_image_is_embedded_once_and_every_tile_has_its_picture(built):
    _, _, _, page = built
    rules = re.findall(r"\.p(\d+)\{background-image", page)
    assert len(rules) == len(set(rules))                          # once, however often it is shown
    tiles = re.findall(r'<figure class="t(?: hl)?" data-r="(\d+)"', page)
    assert set(tiles) == set(rules) and len(tiles) > len(rules)   # and reused
    meta = json.loads(Page(page).scripts[0][1])
    assert set(meta) == set(rules)


def test_every_pair_direction_and_sae_is_present(built):
    s, _, _, page = built
    p, sw = Page(page), s.sweep
    ids = p.ids
    assert {"about", "provenance", "overview", "pairs", "sae", "contents", "summary", "zoom"} <= ids
    for i, (a, b) in enumerate(sw.pairs):
        for d in DIRECTIONS:
            n = len(sw.concepts(i, d))
            assert n == 3
            assert f"pair-{i}-{d}" in ids
            assert {f"pair-{i}-{d}-{c.key}" for c in sw.concepts(i, d)} <= ids
        assert f"{a} → {b}" in "".join(p.text)
    run = s.sae_run()
    assert "sae-0" in ids and sum(i.startswith("sae-0-latent-") for i in ids) == min(12, len(run.concepts()))
    text = "".join(p.text)
    for k in ("FVU", "L0", "dead latents", "best raw dim", "best latent"):
        assert k in text


def test_the_contents_follow_the_page(built):
    "Every link of the contents list leads to an anchor of the page, and they come in the page's order."
    import re
    page = built[3]
    nav = page[page.index('<nav id="contents">'):]
    targets = re.findall(r'href="#([^"]+)"', nav[:nav.index("</nav>")])
    where = [page.find(f'id="{t}"') for t in targets]
    assert len(targets) > 8 and min(where) >= 0, [t for t, w in zip(targets, where) if w < 0]
    assert where == sorted(where), [t for t, w in sorted(zip(targets, where), key=lambda x: x[1])]


def test_tiles_decode_and_are_sharp_at_twice_their_size(built):
    s, _, _, page = built
    n_concepts = sum(len(s.sweep.concepts(i, d)) for i in range(len(s.sweep.pairs)) for d in DIRECTIONS)
    grids = page.count('<div class="grid"')
    assert grids == n_concepts + min(12, len(s.sae_run().concepts()))       # a grid per concept and per latent
    assert page.count('<div class="snap">') == n_concepts                   # a snapshot per concept
    assert "--tile:96px" in page
    for uri in re.findall(r'url\("([^"]*)"\)', page)[:20]:
        im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
        assert im.format in ("WEBP", "JPEG") and im.mode in ("L", "RGB")      # lossy greyscale, not a palette
        a = np.asarray(im.convert("RGB"), np.int16)
        assert np.abs(a - a[..., :1]).max() <= 3 and len(np.unique(a)) > 20
        assert im.size == (min(s.config.thumb_size, 192),) * 2


def test_no_phi(built):
    s, ds, out, page = built
    forbidden = {str(s.path), str(ds.root), "phantoms/images"}
    forbidden |= set(map(str, ds.index["patient_id"])) | set(map(str, ds.index["path"])) | set(map(str, ds.ids))
    forbidden |= {Path(p).name for p in ds.index["path"]}
    found = [f for f in forbidden if f in page]
    assert not found, found[:5]
    assert ".png" not in page
    left_out = page[page.index("<summary>rows left out (1)</summary>"):]
    assert '<td class="num">7</td><td>no activations (unreadable or not extracted)</td>' in left_out[:600]   # by row number


def test_include_ids_shows_image_ids_but_never_patients_or_paths(built, tmp_path):
    s, ds, _, _ = built
    page = export_html(s, tmp_path / "ids.html", include_ids=True, max_concepts=1, snapshots=False, max_latents=1,
                       progress=False).read_text(encoding="utf-8")
    assert ds.ids[7] in page                                       # the excluded row, by id
    assert not any(str(v) in page for v in ds.index["patient_id"])
    assert str(ds.root) not in page and not any(Path(p).name in page for p in ds.index["path"])


def test_size_options(built, tmp_path):
    s, _, full, _ = built
    small = export_html(s, tmp_path / "small.html", max_concepts=1, max_latents=2, snapshots=False, progress=False)
    page = small.read_text(encoding="utf-8")
    n_dirs = 2 * len(s.sweep.pairs)
    assert page.count('<div class="grid"') == n_dirs + 2 and '<div class="snap">' not in page
    assert "1 of 3 concepts are drawn below" in page
    assert small.stat().st_size < full.stat().st_size
    with pytest.raises(ValueError, match="max_concepts"): export_html(s, tmp_path / "x.html", max_concepts=-1)
    with pytest.raises(ValueError, match="thumb_px"): export_html(s, tmp_path / "x.html", thumb_px=4)
    with pytest.raises(ValueError, match="quality"): export_html(s, tmp_path / "x.html", quality=5)


def test_the_size_budget_is_a_cap(built, tmp_path):
    "Whatever the cap, the file stays under it: articles that do not fit are listed, not drawn, most important first."
    s, _, full, _ = built
    bare = len(re.sub(r"<article.*?</article>", "", full.read_text(encoding="utf-8"), flags=re.S).encode())
    cap = (bare + (full.stat().st_size - bare) / 3) / 1e6                  # room for about a third of the articles
    out = export_html(s, tmp_path / "capped.html", size_budget_mb=cap, progress=False)
    page = out.read_text(encoding="utf-8")
    assert out.stat().st_size <= cap * 1e6
    drawn = page.count("<article")
    assert 0 < drawn < full.read_text(encoding="utf-8").count("<article")
    assert re.search(rf"{drawn} of \d+ concept and latent articles drawn", page)
    assert "the others are listed here only" in page
    firsts = [s.sweep.concepts(i, d)[0].key for i in range(len(s.sweep.pairs)) for d in DIRECTIONS]
    seconds = [s.sweep.concepts(i, d)[1].key for i in range(len(s.sweep.pairs)) for d in DIRECTIONS]
    n_first = sum(f'id="pair-{i // 2}-{DIRECTIONS[i % 2]}-{k}"' in page for i, k in enumerate(firsts))
    n_second = sum(f'id="pair-{i // 2}-{DIRECTIONS[i % 2]}-{k}"' in page for i, k in enumerate(seconds))
    assert n_first >= n_second                                               # strongest concepts first


def test_a_hostile_title_stays_text(built, tmp_path):
    s, _, _, _ = built
    bad = '<img src=x onerror="alert(1)">' + PAYLOAD
    page = export_html(s, tmp_path / "t.html", title=bad, max_concepts=1, max_latents=1, progress=False).read_text(encoding="utf-8")
    assert bad not in page and "onerror=\"" not in page and esc(bad) in page
    p = Page(page)
    assert not any(k.lower().startswith("on") for _, a in p.tags for k in a)


def test_a_cap_below_the_summary_is_a_clear_error(built, tmp_path):
    s, _, _, _ = built
    with pytest.raises(ValueError, match="below what the report needs before any concept picture.*raise it to at least"):
        export_html(s, tmp_path / "tiny.html", size_budget_mb=0.01, progress=False)
    assert not (tmp_path / "tiny.html").exists()


def test_a_study_with_activations_only(tmp_path):
    ds = make_phantoms(12, size=64, seed=5, out_dir=tmp_path / "ph")
    s = Study.create(tmp_path / "s", StudyConfig(name="bare", thumb_size=24))
    s.extract(ds, tiny_backbone(1), pooling=("cls",), batch_size=8, progress=False)
    page = s.export_html(progress=False).read_text(encoding="utf-8")          # default: <study>/report.html
    assert "No layer overview yet" in page and "No RDX sweep yet" in page and "No SAE yet" in page
    assert bool(s.status().set_index("part").loc["report", "present"])
    assert all(v.startswith("#") for _, _, v in Page(page).refs())


def test_export_is_atomic(built, tmp_path, monkeypatch):
    s, _, _, _ = built
    target = tmp_path / "r.html"
    target.write_text("old")
    def boom(*a, **k): raise RuntimeError("interrupted")
    monkeypatch.setattr(report, "_sae_section", boom)
    with pytest.raises(RuntimeError, match="interrupted"): export_html(s, target, progress=False)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["r.html"]


def test_export_png_grid_and_snapshot(built, tmp_path):
    s, ds, _, _ = built
    sw = s.sweep
    cs = sw.concepts(0, "01")
    g = export_png(cs, tmp_path / "g.png", key=cs[1].key, study=s)
    im = np.asarray(Image.open(g))
    k = int(np.ceil(np.sqrt(len(cs[1].grid))))
    assert im.shape[1] == k * (32 + 2) + 2 and im.shape[2] == 3
    gf = export_png(cs, tmp_path / "gf.png", study=s, full=True, size=64)
    assert Image.open(gf).size[0] == int(np.ceil(np.sqrt(len(cs[0].grid)))) * 66 + 2
    a, b = sw.pairs[0]
    snap = snapshot(s.representation(a), s.representation(b), sw.result(0), int(cs[0].grid[0]), "01")
    p = export_png(snap, tmp_path / "snap.png", study=s)
    assert Image.open(p).format == "PNG" and len(np.unique(np.asarray(Image.open(p)).reshape(-1, 3), axis=0)) > 50
    with pytest.raises(TypeError, match="Concepts"): export_png(object(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="study= or images="): export_png(cs, tmp_path / "x.png")


# --- a real browser --------------------------------------------------------------------------------------------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p: return p
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


_PROBE = """<script>
window.__violations = [];
document.addEventListener('securitypolicyviolation', function(e){ window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });
window.addEventListener('load', function(){ setTimeout(function(){
  var r = performance.getEntriesByType('resource').map(function(e){ return e.name; });
  document.documentElement.setAttribute('data-probe', JSON.stringify({resources: r, violations: window.__violations}));
}, 1500); });
</script>"""


def _browser(html_file: Path, tmp: Path, *args, timeout=120) -> subprocess.CompletedProcess:
    exe = _chromium()
    if exe is None: pytest.skip("Chromium is not installed (apt-get install chromium)")
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
           "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
           "--virtual-time-budget=15000", *args, html_file.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_chromium_renders_offline(built, tmp_path):
    "Headless Chromium, networking off: the page's script runs, nothing is fetched or blocked, and the screenshot is a page."
    _, _, out, page = built
    probed = tmp_path / "probed.html"      # the report plus a probe recording resource loads and CSP violations
    head = page.index("<title>")
    probed.write_text(page[:head] + _PROBE + page[head:], encoding="utf-8")
    dom = _browser(probed, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="yes"' in dom.stdout, dom.stdout[-500:]
    m = re.search(r"data-probe=\"([^\"]*)\"", dom.stdout)
    assert m, "the probe did not run"
    import html as _html
    probe = json.loads(_html.unescape(m.group(1)))
    assert probe == {"resources": [], "violations": []}, probe
    shot = tmp_path / "shot.png"
    r = _browser(out, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert shot.is_file(), r.stderr[-2000:]
    im = np.asarray(Image.open(shot).convert("RGB"))
    assert im.shape[:2] == (2000, 1280)
    colours = len(np.unique(im.reshape(-1, 3), axis=0))
    assert colours > 200, colours                                   # text, tables, the depth profile, not a blank page
    assert (im < 128).any(axis=2).mean() > 0.005                    # some dark ink


def test_summary_comes_first_and_is_read_from_the_study(built):
    from medinterp.sweep import finding_lines
    s, _, _, page = built
    p = Page(page)
    assert "summary" in p.ids and page.index('id="audit"') < page.index('id="summary"') < page.index('id="overview"') < page.index('id="pairs"')
    summary = page[page.index('id="summary"'):page.index('id="provenance"')]
    table = s.findings()                                          # the labels the audit tests, with the confound check
    assert set(table["label"]) == set(s.audit().tested)
    for line in finding_lines(table): assert esc(line) in summary
    audit = page[page.index('id="audit"'):page.index('id="summary"')]
    for label in s.audit().too_few.index: assert esc(label) in audit  # listed once as too few to test, not analysed
    words = re.sub(r"<[^>]+>", "", summary)                       # the kinds are set in bold
    for x in s.sweep.summaries(): assert esc(x["sentences"][0]) in words
    assert 'alt="depth profile"' in summary
    for i, (a, b) in enumerate(s.sweep.pairs):                    # each pair opens with its two layers projected
        sec = page[page.index(f'id="pair-{i}"'):page.index(f'id="pair-{i}-10"')]
        assert f'alt="projections of {esc(a)} and {esc(b)}"' in sec


def test_a_dataset_named_after_an_absolute_folder_leaks_no_path(built, tmp_path):
    s, _, _, _ = built
    marker = "/home/dr-someone/hospital-x/cxr"                # what `medinterp run --images DIR` used to record
    orig = (s.path / "config.json").read_text()
    cfg = json.loads(orig)
    try:
        cfg["config"]["dataset"] = f"{marker} (39 images, seed 0)"
        (s.path / "config.json").write_text(json.dumps(cfg))
        from medinterp.study import Study
        page = export_html(Study.open(s.path), tmp_path / "r.html", progress=False).read_text(encoding="utf-8")
    finally:
        (s.path / "config.json").write_text(orig)
    assert "dr-someone" not in page and "hospital-x" not in page and "…/cxr" in page


def test_sae_table_counts_are_integers_and_dead_latents_are_called_out(built):
    s, _, _, page = built
    run = s.sae_run()
    sae = page[page.index('id="sae-0"'):]
    cells = re.findall(r'<td class="num">([^<]*)</td>', sae[:sae.index("Top latents")])
    assert cells and not any(re.fullmatch(r"\d+\.0", c) for c in cells), cells          # no "576.0"
    assert ("(dead there)" in sae) == (run.metrics["dead_fraction"] > 0.5)
    assert f"none fired on {run.metrics['n']} held-out images" in sae          # what "dead" was measured on
    rows, n = len(run.record["rows"]), run.metrics["n"]
    assert f"{rows} images: {rows - n} to train, {n} held out" in sae


def test_enrichment_is_split_and_every_name_is_in_its_own_table(built):
    s, _, _, page = built
    sw = s.sweep
    checked = 0
    for i in range(len(sw.pairs)):
        for d in DIRECTIONS:
            for j, c in enumerate(sw.concepts(i, d)):
                a = page.index(f'id="pair-{i}-{d}-{c.key}"')
                art = page[a:page.index("</article>", a)]
                more = art[art.index("More common"):art.index("Less common")] if "Less common" in art and "More common" in art else art
                if c.name.split(":")[0] in KINDS:                       # a name enrichment gave (not a planted one)
                    first = c.name.split(";")[0].rsplit(" (", 1)[0]
                    assert esc(first) in more, (c.key, first)
                    checked += 1
                if "Less common" in art:
                    less = art[art.index("Less common"):]
                    lifts = [float(x) for x in re.findall(r'<td class="num">(\d+\.\d\d)</td>', less)]
                    assert all(l <= 1.0 for l in lifts[:1]), lifts
    assert checked


def test_the_bridge_table_is_the_studys(built):
    s, _, _, page = built
    sw, run = s.sweep, s.sae_run()
    i = len(sw.pairs) - 1                                           # the SAE is on the last layer: direction 10 of the last pair
    if not len(sw.concepts(i, "10")): pytest.skip("no reported concept in the SAE's layer")
    sae = page[page.index('id="sae-0"'):]
    block = sae[sae.index("the latent that fires best on each"):sae.index("Top latents")]
    t = s.bridge(i, "10", top=1).dropna(subset=["latent"])
    for r in t.itertuples():
        assert f'<td class="num">{r.auroc:.3f}</td>' in block and f'<td class="num">{int(r.latent)}</td>' in block


def test_a_click_enlarges_an_image_with_its_metadata_and_no_console_error(built, tmp_path):
    "Selenium drives Chromium over the report: click a grid tile, read the enlarged view, close it with Esc."
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    exe, driver_exe = _chromium(), shutil.which("chromedriver")
    if exe is None or driver_exe is None: pytest.skip("Chromium or chromedriver is not installed")
    s, _, out, _ = built
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1000", "--proxy-server=127.0.0.1:9"):
        opts.add_argument(a)
    opts.binary_location = exe
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_exe), options=opts)
    try:
        driver.get(out.as_uri())
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes"
        zoom = driver.find_element(By.ID, "zoom")
        assert not zoom.is_displayed()
        tile = driver.find_element(By.CSS_SELECTOR, "article.concept .grid figure.t")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tile)
        row = tile.get_attribute("data-r")
        tile.click()
        assert zoom.is_displayed()
        caption = zoom.find_element(By.TAG_NAME, "p").text
        assert caption.startswith(f"row {row}") and "opacity" in caption            # its labels and metadata
        src = zoom.find_element(By.TAG_NAME, "img").get_attribute("src")
        assert src.startswith("data:image/")
        assert driver.execute_script("return arguments[0].naturalWidth", zoom.find_element(By.TAG_NAME, "img")) > 0
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        assert not zoom.is_displayed()
        snap_tile = driver.find_element(By.CSS_SELECTOR, ".snap .srow figure.t")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", snap_tile)
        snap_tile.click()
        assert "rank to the probe before" in zoom.find_element(By.TAG_NAME, "p").text
        zoom.find_element(By.TAG_NAME, "button").click()
        assert not zoom.is_displayed()
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
    finally:
        driver.quit()
