"""Properties of medinterp.core beyond the examples in nbs/00_core.ipynb."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from medinterp.core import (Config, atomic_dir, derive_seed, fingerprint, load_config, make_rng, save_config,
                            spawn_rngs, write_text_atomic)


@dataclass(frozen=True)
class Inner(Config):
    gamma: float | None = 0.05
    beta: float = 5.0


@dataclass(frozen=True)
class Outer(Config):
    name: str = "x"
    layers: tuple[str, ...] = ("a",)
    pair: tuple[int, float] = (1, 2.0)
    inner: Inner = Inner()
    out: Path | None = None

    def validate(self):
        if not self.layers:
            raise ValueError("layers must not be empty")


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(name=names, layers=st.lists(names, min_size=1, max_size=4),
       gamma=st.none() | st.floats(0, 1), beta=st.floats(-1e6, 1e6), n=st.integers(-5, 5))
def test_config_json_round_trip(name, layers, gamma, beta, n):
    c = Outer(name=name, layers=tuple(layers), pair=(n, 0.5), inner=Inner(gamma, beta), out=Path("r") / "s")
    back = Outer.from_json(c.to_json())
    assert back == c
    assert type(back.inner) is Inner and type(back.layers) is tuple and isinstance(back.out, Path)
    assert back.fingerprint() == c.fingerprint()


def test_config_rejects_wrong_type_tag_and_validates_on_load():
    with pytest.raises(ValueError, match="holds a Outer, not a Inner"):
        Inner.from_json(Outer().to_json())
    with pytest.raises(ValueError, match="layers must not be empty"):
        Outer.from_dict({"layers": []})


def test_config_is_frozen():
    with pytest.raises(Exception):
        Outer().name = "y"


def test_fingerprint_distinguishes_arrays_by_dtype_and_shape():
    a = np.zeros(4, dtype=np.float32)
    assert fingerprint(a) != fingerprint(a.astype(np.float64))
    assert fingerprint(a) != fingerprint(a.reshape(2, 2))
    assert fingerprint(a) == fingerprint(a.copy())


@given(st.integers(0, 2**32 - 1))
def test_rngs_are_reproducible_and_independent(seed):
    assert make_rng(seed).integers(1 << 30) == make_rng(seed).integers(1 << 30)
    a, b = spawn_rngs(seed, 2)
    assert not np.array_equal(a.random(8), b.random(8))
    assert 0 <= derive_seed(seed, "x") < 2**32


def test_seeds_must_be_explicit_and_valid():
    for bad in (None, True, 1.5, "0"):
        with pytest.raises(TypeError):
            make_rng(bad)
    with pytest.raises(ValueError):
        derive_seed(-1, "x")


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    p = write_text_atomic(tmp_path / "a" / "f.txt", "hello")
    assert p.read_text() == "hello" and [q.name for q in p.parent.iterdir()] == ["f.txt"]
    with pytest.raises(FileExistsError):
        with atomic_dir(p.parent):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "b") as d:
            (d / "x.npy").write_bytes(b"123")
            raise KeyboardInterrupt
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a"]
    with atomic_dir(tmp_path / "a", overwrite=True) as d:
        save_config(d, Inner(0.1, 2.0), input_fingerprint="f00")
    assert load_config(tmp_path / "a", Inner) == Inner(0.1, 2.0)
    with pytest.raises(ValueError, match="holds a Inner"):
        load_config(tmp_path / "a", Outer)


def test_atomic_artifacts_get_ordinary_permissions(tmp_path):
    "Atomic writes go through mkstemp/mkdtemp (0o600/0o700); the results must be as shareable as a plain open()."
    import os
    from medinterp.core import atomic_dir, write_bytes_atomic, write_text_atomic
    old = os.umask(0o022)
    try:
        f = write_text_atomic(tmp_path / "a.txt", "x")
        g = write_bytes_atomic(tmp_path / "b.bin", b"x")
        with atomic_dir(tmp_path / "d") as d: (d / "inner.txt").write_text("y")
        assert (f.stat().st_mode & 0o777, g.stat().st_mode & 0o777) == (0o644, 0o644)
        assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be created")
def test_an_unwritable_target_is_named_not_its_temporary():
    "An atomic write that cannot start names the file asked for (the CLI prints that), never the hidden temporary."
    from medinterp.core import write_text_atomic
    with pytest.raises(FileNotFoundError) as e: write_text_atomic("/proc/medinterp-report.html", "x")
    assert e.value.filename == "/proc/medinterp-report.html" and ".tmp" not in str(e.value)
