"""The browser in a real JupyterLab: a notebook that opens a study's `browse()` is run by a JupyterLab server and a
headless Chromium (driven by selenium); the widgets must render, and clicking a grid tile's 'probe' button must
redraw the probe snapshot through the live kernel. Skips cleanly where Chromium, chromedriver or selenium is missing
(`.ci/run` installs Debian's chromium and chromium-driver)."""
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
    code = ("from medinterp.study import Study\n"
            f"b = Study.open({str(study.path)!r}).browse(progress=False)\nb")
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


def test_browser_renders_and_responds_in_jupyterlab(lab_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver, root = lab_page
    driver.find_element(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputArea-editor").click()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    out = ".jp-OutputArea-output"
    probes = _wait(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, f"{out} button") if b.text.strip() == "probe"], 180)
    errors = driver.find_elements(By.CSS_SELECTOR, f"{out}[data-mime-type='application/vnd.jupyter.stderr']")
    assert probes, "no browser widget rendered: " + " | ".join(e.text[:500] for e in errors)
    assert _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"{out} .js-plotly-plot"), 60), "no plotly figure rendered"
    images = driver.find_elements(By.CSS_SELECTOR, f"{out} img.widget-image")
    assert len(images) >= 9, len(images)                         # a 3 x 3 grid at least, plus the snapshot
    before = {i.get_attribute("src") for i in images}
    target = probes[-1]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    target.click()
    changed = _wait(lambda: {i.get_attribute("src") for i in driver.find_elements(By.CSS_SELECTOR, f"{out} img.widget-image")} - before, 60)
    assert changed, "clicking 'probe' did not redraw the snapshot"
    errors = driver.find_elements(By.CSS_SELECTOR, f"{out}[data-mime-type='application/vnd.jupyter.stderr']")
    assert not errors, [e.text[:500] for e in errors]
