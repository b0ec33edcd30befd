"""Shared pytest setup: offline by default, and the same test flags as the notebooks.

Tests marked `slow`, `weights` or `data` (the `tst_flags` of settings.ini) are skipped unless the flag is named in
the environment variable MEDINTERP_TEST_FLAGS (space separated), e.g. `MEDINTERP_TEST_FLAGS="slow" pytest tests`.
"""
import configparser
import importlib.util
import os
from pathlib import Path

import pytest

# No network at test time: hub clients fail fast instead of waiting for a timeout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str):
    "The script at `ROOT / relpath` (a benchmark, a CI check) loaded as a module, so that tests can call its functions."
    spec = importlib.util.spec_from_file_location(f"script_{Path(relpath).stem}", ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tst_flags() -> list[str]:
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"].get("tst_flags", "").split()


def forced_flags() -> list[str]:
    return os.environ.get("MEDINTERP_TEST_FLAGS", "").split()


def pytest_configure(config):
    for flag in tst_flags():
        config.addinivalue_line("markers", f"{flag}: skipped unless MEDINTERP_TEST_FLAGS contains '{flag}'")


def pytest_collection_modifyitems(config, items):
    skipped = set(tst_flags()) - set(forced_flags())
    for item in items:
        for flag in skipped & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.skip(reason=f"'{flag}' test: set MEDINTERP_TEST_FLAGS='{flag}' to run it"))
