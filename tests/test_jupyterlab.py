"""The browser in a real JupyterLab: a notebook that opens a study's `browse()` (progress bar on) is run by a JupyterLab
server and a headless Chromium (driven by selenium); the widgets must render without a leftover progress bar, and
every interaction must reach the live kernel and come back into the page: a pair switch, a direction switch, a
'probe' click (the snapshot's title names the probed image, its tile is framed), enlarge and close (the enlarged view
appears in place of the grid, then goes), the SAE tab (header, bridge table, its own enlarged view; the RDX one stays
closed) and the help toggle. Widgets are found by their stable CSS classes (`mi-...`). Skips cleanly where Chromium,
chromedriver or selenium is missing (`.ci/run` installs Debian's chromium and chromium-driver)."""
import json
import shutil
import socket
import subprocess
import sys
import time
import warnings

import pytest

from medinterp.phantoms import make_phantoms
from medinterp.rdx import RDXConfig
from medinterp.sae import SAEConfig
from medinterp.study import Study, StudyConfig
from test_extract import tiny_backbone

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium or chromedriver is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _wait(what, timeout: float, step: float = 0.5):
    "Poll `what()` until it returns something truthy (returned) or `timeout` seconds pass (None)."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got: return got
        time.sleep(step)
    return None


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    from selenium.webdriver.common.by import By
    root = tmp_path_factory.mktemp("lab")
    ds = make_phantoms(40, size=64, seed=3, out_dir=root / "phantoms", flip=0.5, opacity=0.5)
    study = Study.create(root / "study", StudyConfig(name="lab", backbone="tiny", dataset="phantoms", thumb_size=32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.extract(ds, tiny_backbone(2), pooling=("cls", "mean"), batch_size=8, progress=False)
    study.run_rdx(RDXConfig(mode="paper", n_clusters=3, grid_size=9, stability_runs=0, min_size=1, max_share=1.0), progress=False)
    study.train_sae(config=SAEConfig(architecture="topk", expansion=2, k=4, epochs=2, batch_size=16, seed=0), progress=False)
    code = ("from medinterp.study import Study\n"
            f"b = Study.open({str(study.path)!r}).browse()\nb")                 # with its progress bar
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": code}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "browse.ipynb").write_text(json.dumps(nb))
    port = _free_port()
    log = open(root / "lab.log", "w")
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                            "--allow-root", "--ServerApp.token=medinterp-test", f"--ServerApp.root_dir={root}",
                            "--LabApp.news_url=", "--ServerApp.open_browser=False"], stdout=log, stderr=subprocess.STDOUT)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2200", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    driver = None
    try:
        def up():
            try: socket.create_connection(("127.0.0.1", port), timeout=1).close(); return True
            except OSError: return False
        assert _wait(up, 90), "JupyterLab did not start: " + (root / "lab.log").read_text()[-2000:]
        driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=opts)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/browse.ipynb?token=medinterp-test")
        editor = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputArea-editor"), 120)
        assert editor, "the notebook did not open"
        _wait(lambda: "Idle" in driver.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget, body").text, 60)
        yield driver, root
    finally:
        if driver is not None:
            try: driver.save_screenshot(str(root / "jupyterlab.png"))
            except Exception: pass
            driver.quit()
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill()
        log.close()


OUT = ".jp-OutputArea-output"


def _one(driver, css: str):
    "The first element matching `css` inside the cell's output (None when there is none)."
    from selenium.webdriver.common.by import By
    found = driver.find_elements(By.CSS_SELECTOR, f"{OUT} {css}")
    return found[0] if found else None


def _shown(driver, css: str) -> bool:
    el = _one(driver, css)
    return el is not None and el.is_displayed()


def _text(driver, css: str) -> str:
    el = _one(driver, css)
    return "" if el is None else el.get_attribute("textContent")


def _click(driver, el):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def _stderr(driver) -> list[str]:
    from selenium.webdriver.common.by import By
    return [e.text[:500] for e in driver.find_elements(By.CSS_SELECTOR, f"{OUT}[data-mime-type='application/vnd.jupyter.stderr']")]


def _tiles(driver, grid: str = ".mi-grid"):
    "(caption, tile element) of every visible tile of `grid`."
    from selenium.webdriver.common.by import By
    return [(t.find_element(By.CSS_SELECTOR, ".widget-html").get_attribute("textContent").strip(), t)
            for t in driver.find_elements(By.CSS_SELECTOR, f"{OUT} {grid} .mi-tile") if t.is_displayed()]


@pytest.fixture(scope="module")
def browser_page(lab_page):
    "The notebook's cell run: the browser rendered in the page."
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver, root = lab_page
    driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputArea-editor").click()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    probes = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"{OUT} .mi-grid .mi-probe-button"), 180)
    assert probes, "no browser widget rendered: " + " | ".join(_stderr(driver))
    assert _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"{OUT} .mi-overview.js-plotly-plot"), 60), "no plotly figure"
    return driver


def test_browser_renders_without_a_leftover_progress_bar(browser_page):
    from selenium.webdriver.common.by import By
    driver = browser_page
    assert _wait(lambda: _text(driver, ".mi-snapshot-title").startswith("probe"), 30), "no probe snapshot"
    bars = [b for b in driver.find_elements(By.CSS_SELECTOR, f"{OUT} .widget-progress, {OUT} progress") if b.is_displayed()]
    assert not bars and "browser:" not in driver.find_element(By.CSS_SELECTOR, ".jp-OutputArea").text, "a progress bar is left"
    tiles = _tiles(driver)
    assert len(tiles) >= 2 and all(t.find_element(By.CSS_SELECTOR, "img").get_attribute("src").startswith("blob:")
                                   for _, t in tiles)                            # the concept's images, drawn
    assert not _stderr(driver), _stderr(driver)


def test_pair_and_direction_switch(browser_page):
    from selenium.webdriver.support.ui import Select
    from selenium.webdriver.common.by import By
    driver = browser_page
    pair = Select(_one(driver, ".mi-pair select"))
    first, second = [o.get_attribute("value") for o in pair.options][:2]
    before = _text(driver, ".mi-direction-text")
    pair.select_by_index(1)
    a, b = pair.options[1].text.split("→")
    assert _wait(lambda: f"{b} groups together that {a} kept apart" in _text(driver, ".mi-direction-text"), 30), \
        ("the pair switch did not reach the page", before, _text(driver, ".mi-direction-text"))
    lost = next(x for x in driver.find_elements(By.CSS_SELECTOR, f"{OUT} .mi-direction button") if "lost" in x.text)
    _click(driver, lost)
    assert _wait(lambda: f"{a} grouped together that {b} pulls apart" in _text(driver, ".mi-direction-text"), 30), \
        "the direction switch did not reach the page"
    assert _wait(lambda: "mod-active" in lost.get_attribute("class"), 30)
    assert not _stderr(driver), _stderr(driver)


def test_probe_frames_the_tile_and_redraws_the_snapshot(browser_page):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    driver = browser_page
    snap = _one(driver, "img.mi-snapshot").get_attribute("src")
    caption, titled = None, lambda: caption is not None and f"probe {caption}" in _text(driver, ".mi-snapshot-title")
    for _ in range(4):
        # the previous test's direction switch may still be redrawing the grid (another concept, other tiles): pick
        # the tile to probe from the tiles on the page now, and pick again if the click landed on a grid being replaced
        try:
            caption, tile = [(c, t) for c, t in _tiles(driver) if "mi-probed" not in t.get_attribute("class")][-1]
            _click(driver, tile.find_element(By.CSS_SELECTOR, ".mi-probe-button"))
        except StaleElementReferenceException:
            time.sleep(1); continue
        if _wait(titled, 10): break
    assert titled(), ("the snapshot title does not name the probed image", caption, _text(driver, ".mi-snapshot-title"))
    framed = lambda: [c for c, t in _tiles(driver) if "mi-probed" in t.get_attribute("class")] == [caption]
    assert _wait(framed, 30), "the probed tile (and only it) is not framed"
    assert _wait(lambda: _one(driver, "img.mi-snapshot").get_attribute("src") != snap, 30), "the snapshot was not redrawn"


def test_enlarge_then_close(browser_page):
    from selenium.webdriver.common.by import By
    driver = browser_page
    caption, tile = _tiles(driver)[0]
    _click(driver, tile.find_element(By.CSS_SELECTOR, ".mi-enlarge-button"))
    assert _wait(lambda: _shown(driver, ".mi-enlarged-rdx") and caption in _text(driver, ".mi-enlarged-rdx"), 30), \
        "the enlarged view did not open"
    assert _wait(lambda: not _shown(driver, ".mi-grid"), 30), "the enlarged view is not in place of the grid"
    _click(driver, _one(driver, ".mi-enlarged-rdx .mi-enlarged-close"))
    assert _wait(lambda: not _shown(driver, ".mi-enlarged-rdx") and _shown(driver, ".mi-grid"), 30), "it did not close"


def test_sae_tab_has_its_own_enlarged_view_and_the_bridge(browser_page):
    from selenium.webdriver.common.by import By
    driver = browser_page
    _click(driver, _tiles(driver)[0][1].find_element(By.CSS_SELECTOR, ".mi-enlarge-button"))
    assert _wait(lambda: _shown(driver, ".mi-enlarged-rdx"), 30)
    tab = next(t for t in driver.find_elements(By.CSS_SELECTOR, f"{OUT} .mi-tabs .lm-TabBar-tab") if "SAE" in t.text)
    _click(driver, tab)
    assert _wait(lambda: _shown(driver, ".mi-sae-header") and "FVU" in _text(driver, ".mi-sae-header"), 30), "no SAE tab"
    assert _wait(lambda: "best latent" in _text(driver, ".mi-bridge"), 60), "no bridge table"
    assert _wait(lambda: not _shown(driver, ".mi-enlarged-rdx") and not _shown(driver, ".mi-enlarged-sae"), 30), \
        "an enlarged view is left open in the SAE tab"
    caption, tile = _tiles(driver, ".mi-sae-grid")[1]
    _click(driver, tile.find_element(By.CSS_SELECTOR, ".mi-enlarge-button"))
    assert _wait(lambda: _shown(driver, ".mi-enlarged-sae") and caption in _text(driver, ".mi-enlarged-sae"), 30)
    assert _wait(lambda: not _shown(driver, ".mi-sae-grid"), 30)
    rdx = next(t for t in driver.find_elements(By.CSS_SELECTOR, f"{OUT} .mi-tabs .lm-TabBar-tab") if "RDX" in t.text)
    _click(driver, rdx)                                     # back: both enlarged views closed, the grid is there
    assert _wait(lambda: _shown(driver, ".mi-grid"), 30)
    assert _wait(lambda: not _shown(driver, ".mi-enlarged-rdx") and not _one(driver, ".mi-enlarged-sae").is_displayed(), 30)
    assert not _stderr(driver), _stderr(driver)


def test_help_toggle(browser_page):
    driver = browser_page
    assert not _shown(driver, ".mi-help")
    _click(driver, _one(driver, ".mi-help-button"))
    assert _wait(lambda: _shown(driver, ".mi-help") and "How to read" in _text(driver, ".mi-help"), 30), "help did not open"
    _click(driver, _one(driver, ".mi-help-button"))
    assert _wait(lambda: not _shown(driver, ".mi-help"), 30), "help did not close"
