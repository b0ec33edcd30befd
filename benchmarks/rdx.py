"""Benchmark `medinterp.rdx.rdx` (dense RDX) against a straightforward baseline, and `rdx_large` against `rdx`.

1. Dense path (default N=2,500, d=768, one layer pair, both directions). The baseline is written here from the maths of
   docs/rdx.md, the way the original recipe does it: `torch.cdist` in float64 for A and B, ranks by two stable
   argsorts (self forced to rank 0), every matrix kept (D_A, D_B, R_A, R_B, the symmetrised ranks in v2, Δ, M^B, M^A,
   S = (M + Mᵀ)/2 per direction), dense scikit-learn `SpectralClustering(affinity="precomputed")` on S per direction,
   then clusters relabelled by ascending mean within-cluster affinity. Each implementation runs in a fresh process
   (this script with a hidden `--worker` flag, data passed as .npy): the time is the median of `--repeats` runs after
   one warm-up run (imports excluded), the memory is the peak RSS (getrusage) minus the RSS after imports and data
   load. A separate, unmeasured step runs both in this process and compares Δ, M^B, M^A and the relabelled cluster
   labels (`rdx(..., keep_delta=True)`). Goals: >= 5x faster, <= 1/3 of the peak memory, max |diff| <= 1e-9, same labels.
2. Large-N path. (a) Agreement: dense `rdx` and `rdx_large` (landmarks 500, 1000, 2000) on the same 5,000 images;
   adjusted Rand index of the concept labels (clusters not kept as concepts -> one label -1) and of the plain cluster
   labels per direction, and for each of the dense run's 3 strongest concepts the best Jaccard overlap with any kept
   concept of `rdx_large` (a match is Jaccard > 0.5, which makes it unique). Goal: ARI >= 0.9, top concepts matched.
   For reference the same numbers are printed for dense `rdx` with the next seed against dense `rdx`: how stable the
   clustering is by itself (k-means restarts on a weak spectral embedding can move many images).
   (b) Scale: `rdx_large` at N=50,000 (landmarks 4,000) in a fresh process, wall time and peak RSS, beside the dense
   path's memory estimate (why `rdx` refuses that N).

Data: a synthetic, structured pair by default (A: Gaussian mixture of 20 components in a random 32-dimensional subspace
plus isotropic noise; B: the same images with three component pairs merged and three components split in two, through a
fixed random tanh map, plus noise), so RDX has real differences to find; or two layers of an activation store
(`--store PATH --layers L1 L2`, first N rows; the 50k scale run stays synthetic). Threads: `--threads` (default all
cores) for torch and BLAS in every process. The default run takes about 12 minutes on two idle cores, about 5 of them
the 50k `rdx_large` run (two to three times longer when other processes share the cores: the load and Linux CPU pressure
are printed beside each measurement, and CPU seconds beside wall seconds; medians are reported).

    python benchmarks/rdx.py                                   # N=2500, d=768, v2, 3 repeats, agreement at 5000, 50k scale
    python benchmarks/rdx.py --quick                           # small sizes, about a minute
    python benchmarks/rdx.py --mode paper --skip-large
    python benchmarks/rdx.py --store runs/store --layers block9 block10 --skip-large
    python benchmarks/rdx.py --skip-large --skip-agreement --profile     # + cProfile of both dense implementations
    python benchmarks/rdx.py --skip-large --skip-dense --profile         # + cProfile of rdx_large (largest --landmarks)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note  # noqa: E402  (shared with the other benchmark scripts)

GOAL_SPEEDUP = 5.0          # baseline time / rdx time
GOAL_MEMORY = 1 / 3         # rdx peak memory / baseline peak memory
GOAL_DIFF = 1e-9            # max |Δ| and |M| difference
GOAL_ARI = 0.9              # rdx_large vs rdx
TOP_CONCEPTS = 3
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


# ------------------------------------------------------------------------------------------------ data
def make_pair(n: int, d: int = 768, seed: int = 0, n_components: int = 20, latent: int = 32):
    """Structured synthetic pair (A, B, component) of n images.

    A: Gaussian mixture (n_components components with random weights and spreads) in a random `latent`-dimensional
    subspace of R^d plus isotropic noise. B: components 1, 3, 5 moved onto 0, 2, 4 (merged), components 6, 7, 8 cut
    in two halves by a random hyperplane that drift apart (split), then a fixed random map tanh(z W1 + b1) W2 to R^d,
    plus noise. float32, like stored activations."""
    import numpy as np
    rng = np.random.default_rng(seed)
    k = n_components
    comp = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 8.0)))
    centres = rng.normal(size=(k, latent)) * 3.0
    spread = rng.uniform(0.7, 1.3, size=k)
    z = centres[comp] + rng.normal(size=(n, latent)) * spread[comp, None]
    U = np.linalg.qr(rng.normal(size=(d, latent)))[0].T                    # latent x d, orthonormal rows
    A = z @ U + 0.15 * rng.normal(size=(n, d))
    zb = z.copy()
    for a, b in ((1, 0), (3, 2), (5, 4)):                                   # merges
        zb[comp == a] += centres[b] - centres[a]
    for c in (6, 7, 8):                                                     # splits
        m = comp == c
        v, u = rng.normal(size=latent), rng.normal(size=latent)
        side = np.where((z[m] - centres[c]) @ v >= 0, 1.0, -1.0)
        zb[m] += 3.0 * side[:, None] * (u / np.linalg.norm(u))
    H = 256
    W1 = rng.normal(size=(latent, H)) * (0.35 / np.sqrt(latent))
    b1 = rng.normal(size=H) * 0.3
    W2 = rng.normal(size=(H, d)) / np.sqrt(H)
    Bc = np.tanh(zb @ W1 + b1) @ W2
    B = Bc + 0.15 * Bc.std() * rng.normal(size=(n, d))
    return A.astype(np.float32), B.astype(np.float32), comp


def load_store(path, layers, n: int):
    "First n rows of two layers of an activation store (float32 copies)."
    import numpy as np
    from medinterp.extract import ActivationStore
    s = ActivationStore.open(path)
    A, B = (np.array(s.load(l)[:n], dtype=np.float32) for l in layers)
    if len(A) < n: print(f"note: the store has {len(A)} rows, fewer than N={n}; using all of them", flush=True)
    return A, B


# ------------------------------------------------------------------------------------------------ baseline
def baseline_rdx(A, B, cfg, stages: dict | None = None) -> dict:
    """The original recipe, every N x N matrix kept: returns a dict with D_A, D_B, R_A, R_B, (RS_A, RS_B), delta,
    M_10, M_01, S_10, S_01, labels_10/01 and means_10/01 (relabelled by ascending mean within-cluster affinity)."""
    import numpy as np
    import torch
    from sklearn.cluster import SpectralClustering
    clock = time.perf_counter
    n = len(A)
    gamma = 80.0 / n if cfg.gamma is None else float(cfg.gamma)
    out = {}
    t0 = clock()
    for name, X in (("A", A), ("B", B)):
        Xt = torch.as_tensor(np.asarray(X), dtype=torch.float64)
        out[f"D_{name}"] = torch.cdist(Xt, Xt)                               # float64 N x N
    t1 = clock()
    for name in ("A", "B"):
        D = out[f"D_{name}"]
        D.fill_diagonal_(-1.0)                                             # self first, even next to a duplicate
        order = torch.argsort(D, dim=1, stable=True)                        # ties: lower index first
        out[f"R_{name}"] = torch.argsort(order, dim=1, stable=True).numpy()  # position of j in row i (int64)
        del order
    t2 = clock()
    RA, RB = out["R_A"], out["R_B"]
    if cfg.mode == "v2":
        out["RS_A"], out["RS_B"] = (RA + RA.T) / 2.0, (RB + RB.T) / 2.0
        RA, RB = out["RS_A"], out["RS_B"]
    out["delta"] = delta = np.tanh(gamma * (RB - RA) / (np.minimum(RA, RB) + 1.0))
    out["M_10"] = np.exp(-cfg.beta * delta)                                 # pulled together in B
    out["M_01"] = np.exp(cfg.beta * delta)                                  # pulled together in A
    for key in ("10", "01"):
        out[f"S_{key}"] = (out[f"M_{key}"] + out[f"M_{key}"].T) / 2.0
    t3 = clock()
    t_spec = t_relabel = 0.0
    for key in ("10", "01"):
        ts = clock()
        sc = SpectralClustering(n_clusters=cfg.n_spectral, affinity="precomputed", random_state=cfg.seed,
                                n_init=cfg.n_init)
        raw = sc.fit(out[f"S_{key}"]).labels_
        tr = clock()
        M = out[f"M_{key}"]
        ks = np.unique(raw)
        means = np.array([M[np.ix_(raw == k, raw == k)].mean() for k in ks])
        order = np.argsort(means, kind="stable")
        new = np.empty(raw.max() + 1, dtype=np.int64)
        new[ks[order]] = np.arange(len(ks))
        out[f"labels_{key}"], out[f"means_{key}"] = new[raw], means[order]
        t_spec += tr - ts
        t_relabel += clock() - tr
    if stages is not None:
        stages.update({"distances": t1 - t0, "ranks": t2 - t1, "delta+M+S": t3 - t2, "spectral": t_spec,
                       "relabel": t_relabel})
    return out


# ------------------------------------------------------------------------------------------------ workers
def _set_threads(threads: int):
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    "User + system CPU seconds of this process (all threads)."
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rdx_version() -> str:
    "Short hash and time of the medinterp/rdx.py this process would import (the module is being worked on)."
    import hashlib
    import medinterp.rdx as mod
    f = Path(mod.__file__)
    return f"{hashlib.sha256(f.read_bytes()).hexdigest()[:10]} ({time.strftime('%Y-%m-%d %H:%M', time.localtime(f.stat().st_mtime))})"


def _config(mode: str):
    "The method itself, without the stability reruns (an extra the baseline does not have; see benchmarks/stability.py)."
    from medinterp.rdx import RDXConfig
    return RDXConfig(mode=mode, stability_runs=0)


def _worker_inputs(data: Path, mode: str, threads: int):
    "What every worker process starts from: (rdx version, config, A, B, RSS in MiB before running)."
    import numpy as np
    _set_threads(threads)
    return rdx_version(), _config(mode), np.load(data / "A.npy"), np.load(data / "B.npy"), _rss_mib()


def dense_worker(kind: str, data: Path, mode: str, repeats: int, threads: int):
    "Fresh process: time `repeats` runs of one implementation after a warm-up; print one JSON line."
    import gc
    import resource
    import numpy as np
    import torch                                    # noqa: F401  same imports in both workers
    import scipy.sparse.linalg                      # noqa: F401
    import sklearn.cluster                          # noqa: F401
    from medinterp.rdx import rdx
    version, cfg, A, B, pre = _worker_inputs(data, mode, threads)
    times, stages = [], []
    for r in range(repeats + 1):
        st = {}
        c0 = _cpu_s()
        t0 = time.perf_counter()
        if kind == "baseline":
            out = baseline_rdx(A, B, cfg, st)
        else:
            out = rdx(A, B, cfg)
            st = dict(out.meta["seconds"])
        secs = time.perf_counter() - t0
        st["cpu"] = _cpu_s() - c0
        del out
        gc.collect()
        if r == 0:
            warm, peak_warm = secs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        else:
            times.append(secs); stages.append(st)
        print(f"    {kind}: {'warm-up' if r == 0 else f'run {r}'} {secs:6.2f} s", file=sys.stderr, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024        # KiB on Linux
    med_stages = {k: statistics.median(s[k] for s in stages) for k in stages[0]} if stages else {}
    print(json.dumps({"kind": kind, "version": version, "pre_mib": pre, "peak_mib": peak, "peak_after_warmup_mib": peak_warm,
                      "warmup_s": warm, "times": times, "stages": med_stages}))


def large_worker(data: Path, mode: str, landmarks: int, threads: int):
    "Fresh process: one `rdx_large` run; print one JSON line with time and peak RSS."
    import resource
    import numpy as np
    from medinterp.rdx import rdx_large
    version, cfg, A, B, pre = _worker_inputs(data, mode, threads)
    print(f"    rdx_large(N={len(A)}, landmarks={landmarks}) started (RSS {pre:.0f} MiB); exact landmark rank rows "
          f"first, then image blocks", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    res = rdx_large(A, B, cfg, landmarks=landmarks, progress=True)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept = {k: len(res[k].kept) for k in ("10", "01")}
    print(json.dumps({"version": version, "pre_mib": pre, "peak_mib": peak, "seconds": secs, "kept": kept,
                      "mean_abs_delta": res.mean_abs_delta}))


def _spawn(args: list, threads: int, *, stream_stderr: bool = False, env_extra: dict | None = None) -> dict:
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS}, **(env_extra or {}))
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--threads", str(threads)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if stream_stderr else subprocess.PIPE, text=True,
                       env=env)
    if not stream_stderr and p.stderr: print(p.stderr, end="", flush=True)
    if p.returncode: raise RuntimeError(f"worker {' '.join(args)} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r.get("version") != rdx_version():
        print(f"  WARNING: the worker ran medinterp/rdx.py {r.get('version')}, this process sees {rdx_version()}", flush=True)
    return r


# ------------------------------------------------------------------------------------------------ steps
def dense_timing(data: Path, mode: str, repeats: int, threads: int) -> dict:
    res = {}
    for kind in ("baseline", "medinterp"):
        print(f"  {kind} in a fresh process ({repeats} timed runs after a warm-up; {load_note()})...", flush=True)
        r = _spawn(["--worker", kind, "--data", str(data), "--mode", mode, "--repeats", str(repeats)], threads)
        r["median_s"] = statistics.median(r["times"])
        r["extra_mib"] = r["peak_mib"] - r["pre_mib"]
        res[kind] = r
        r["cpu_s"] = r["stages"].pop("cpu")
        st = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(f"    median {r['median_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU (runs {', '.join(f'{t:.2f}' for t in r['times'])}; warm-up "
              f"{r['warmup_s']:.2f}); RSS {r['pre_mib']:.0f} MiB before, peak {r['peak_mib']:.0f} MiB -> "
              f"+{r['extra_mib']:.0f} MiB (peak after warm-up alone {r['peak_after_warmup_mib']:.0f}); "
              f"stages [s]: {st}", flush=True)
    b, m = res["baseline"], res["medinterp"]
    print(f"  time: baseline {b['median_s']:.2f} s, rdx {m['median_s']:.2f} s -> {b['median_s'] / m['median_s']:.2f}x "
          f"faster (goal >= {GOAL_SPEEDUP:g}x); peak memory: baseline +{b['extra_mib']:.0f} MiB, rdx "
          f"+{m['extra_mib']:.0f} MiB -> ratio {m['extra_mib'] / b['extra_mib']:.3f} (goal <= {GOAL_MEMORY:.3f})",
          flush=True)
    return res


def _composition(members, comp, top: int = 2) -> str:
    import numpy as np
    if comp is None or len(members) == 0: return ""
    u, c = np.unique(comp[members], return_counts=True)
    o = np.argsort(-c)[:top]
    return " {" + ", ".join(f"comp {u[i]}: {c[i] / len(members):.0%}" for i in o) + "}"


def describe(res, comp=None, top: int = TOP_CONCEPTS):
    "One line per direction: kept concepts and the strongest ones (size, mean affinity, generator components)."
    for key in ("10", "01"):
        d = res[key]
        parts = [f"c{k}: {len(d.members(k))} imgs, m={d.means[k]:.2f}{_composition(d.members(k), comp)}"
                 for k in d.kept[:top]]
        print(f"    direction {key} ({d.explained} vs {d.reference}): {len(d.kept)} kept of {len(d.means)}; strongest: "
              + "; ".join(parts), flush=True)


def identity(A, B, mode: str, comp=None) -> dict:
    "Both implementations in this process: max |Δ diff|, max |M diff| per direction, labels equal per direction."
    import numpy as np
    from sklearn.metrics import adjusted_rand_score
    from medinterp.rdx import affinity, rdx
    cfg = _config(mode)
    base = baseline_rdx(A, B, cfg)
    res = rdx(A, B, cfg, keep_delta=True)
    out = {"delta": float(np.abs(res.delta - base["delta"]).max())}
    for key in ("10", "01"):
        M = affinity(res.delta, cfg.beta, key)
        out[f"M_{key}"] = float(np.abs(M - base[f"M_{key}"]).max())
        del M
        lab, blab = res[key].labels, base[f"labels_{key}"]
        out[f"labels_{key}"] = bool(np.array_equal(lab, blab))
        out[f"differ_{key}"] = int((lab != blab).sum())
        out[f"ari_{key}"] = float(adjusted_rand_score(blab, lab))
        out[f"means_{key}"] = float(np.abs(res[key].means - base[f"means_{key}"]).max()) \
            if len(res[key].means) == len(base[f"means_{key}"]) else float("nan")
    del base
    print(f"  max |Δ_rdx - Δ_baseline| = {out['delta']:.3g}; max |M^B diff| = {out['M_10']:.3g}; "
          f"max |M^A diff| = {out['M_01']:.3g} (goal <= {GOAL_DIFF:g})")
    for key in ("10", "01"):
        print(f"  direction {key}: labels equal {out[f'labels_{key}']} ({out[f'differ_{key}']} of {len(A)} differ, "
              f"ARI {out[f'ari_{key}']:.4f}); max |cluster mean diff| {out[f'means_{key}']:.3g}")
    print("  what rdx found:")
    describe(res, comp)
    return out


def _concept_labels(d):
    import numpy as np
    return np.where(np.isin(d.labels, d.kept), d.labels, -1)


def compare_partitions(dense, other, match: float = 0.5, name: str = "large") -> dict:
    "ARI (concept labels, plain labels) and best Jaccard of dense's strongest concepts, per direction."
    from sklearn.metrics import adjusted_rand_score
    row = {}
    for key in ("10", "01"):
        dd, do = dense[key], other[key]
        row[f"ari_concepts_{key}"] = float(adjusted_rand_score(_concept_labels(dd), _concept_labels(do)))
        row[f"ari_labels_{key}"] = float(adjusted_rand_score(dd.labels, do.labels))
        jac, notes = [], []
        other_sets = [(rank, set(do.members(k).tolist())) for rank, k in enumerate(do.kept, 1)]
        for c in dd.kept[:TOP_CONCEPTS]:
            a = set(dd.members(c).tolist())
            best, rank, b = max(((len(a & b) / len(a | b), rank, b) for rank, b in other_sets),
                                key=lambda t: (t[0], -t[1]), default=(0.0, 0, set()))
            jac.append(best)
            notes.append(f"{len(a)} imgs -> J {best:.2f} with {name} #{rank} ({len(b)} imgs; it covers "
                         f"{len(a & b) / max(len(a), 1):.0%} of the dense one)")
        row[f"jaccard_{key}"] = jac
        row[f"notes_{key}"] = notes
        row[f"matched_{key}"] = sum(j > match for j in jac)
        row[f"top_{key}"] = len(jac)
        row[f"kept_{key}"] = (len(dd.kept), len(do.kept))
    return row


def _print_partitions(row, other: str):
    for key in ("10", "01"):
        print(f"    direction {key}: ARI concepts {row[f'ari_concepts_{key}']:.3f}, ARI cluster labels "
              f"{row[f'ari_labels_{key}']:.3f}; kept dense/{other} {row[f'kept_{key}'][0]}/{row[f'kept_{key}'][1]}; "
              f"top-{TOP_CONCEPTS} best Jaccard {', '.join(f'{j:.2f}' for j in row[f'jaccard_{key}'])} "
              f"({row[f'matched_{key}']}/{row[f'top_{key}']} matched)", flush=True)
        for i, note in enumerate(row[f"notes_{key}"], 1): print(f"      dense #{i}: {note}", flush=True)


def agreement(A, B, mode: str, landmarks, comp=None, match: float = 0.5) -> dict:
    """Dense rdx vs rdx_large on the same images: ARI per direction and top-concept Jaccard overlaps; plus, for
    reference, dense rdx with the next seed against dense rdx (how stable the clustering is by itself)."""
    from medinterp.rdx import rdx, rdx_large
    cfg = _config(mode)
    t0 = time.perf_counter()
    dense = rdx(A, B, cfg)
    t_dense = time.perf_counter() - t0
    print(f"  dense rdx on N={len(A)}: {t_dense:.1f} s", flush=True)
    describe(dense, comp)
    ref = compare_partitions(dense, rdx(A, B, cfg.replace(seed=cfg.seed + 1)), match, name="seed+1")
    print(f"  reference: dense rdx with seed {cfg.seed + 1} against seed {cfg.seed} (the clustering's own stability)")
    _print_partitions(ref, "seed+1")
    rows = []
    for m in landmarks:
        t0 = time.perf_counter()
        lg = rdx_large(A, B, cfg, landmarks=m)
        secs = time.perf_counter() - t0
        row = {"landmarks": m, "seconds": secs, **compare_partitions(dense, lg, match)}
        rows.append(row)
        print(f"  landmarks {m:5d}: rdx_large {secs:6.1f} s ({t_dense / secs:.1f}x faster than dense)", flush=True)
        _print_partitions(row, "large")
    return {"n": len(A), "dense_s": t_dense, "rows": rows, "reference": ref}


def scale(n: int, d: int, mode: str, landmarks: int, threads: int, work: Path) -> dict:
    from medinterp.rdx import available_memory, estimate_memory
    import numpy as np
    t0 = time.perf_counter()
    A, B, _ = make_pair(n, d)
    folder = work / "large"
    folder.mkdir(exist_ok=True)
    np.save(folder / "A.npy", A); np.save(folder / "B.npy", B)
    del A, B
    est, avail = estimate_memory(n), available_memory()
    verdict = "unknown" if avail is None else ("it refuses" if est > avail else "it would still fit")
    print(f"  N={n}, d={d}: data in {time.perf_counter() - t0:.0f} s; dense rdx would need about {est / 2**30:.1f} GiB "
          f"(estimate_memory), {avail / 2**30 if avail else float('nan'):.1f} GiB available -> {verdict}", flush=True)
    r = _spawn(["--worker", "large", "--data", str(folder), "--mode", mode, "--large-landmarks", str(landmarks)],
               threads, stream_stderr=True, env_extra={"TQDM_MININTERVAL": "20"})
    r.update({"n": n, "landmarks": landmarks, "estimate_bytes": est, "available_bytes": avail,
              "extra_mib": r["peak_mib"] - r["pre_mib"]})
    print(f"  rdx_large N={n}, landmarks {landmarks}: {r['seconds']:.0f} s, RSS {r['pre_mib']:.0f} MiB after loading, "
          f"peak {r['peak_mib']:.0f} MiB (+{r['extra_mib']:.0f} MiB); kept concepts {r['kept']}", flush=True)
    return r


def profile(A, B, mode: str, top: int = 18, landmarks: int | None = None):
    "cProfile of one run of each dense implementation (after a warm-up), or of `rdx_large`, top entries by internal time."
    import cProfile
    import pstats
    from medinterp.rdx import rdx, rdx_large
    cfg = _config(mode)
    runs = ((f"rdx_large, landmarks {landmarks}", lambda: rdx_large(A, B, cfg, landmarks=landmarks)),) if landmarks else \
        (("baseline", lambda: baseline_rdx(A, B, cfg)), ("medinterp rdx", lambda: rdx(A, B, cfg)))
    for name, fn in runs:
        if not landmarks: fn()
        pr = cProfile.Profile()
        pr.enable(); fn(); pr.disable()
        print(f"\n  cProfile of {name} (N={len(A)}), by internal time:")
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(top)


# ------------------------------------------------------------------------------------------------ summary
def summary(dense, ident, agree, large, args):
    rows = []
    def add(metric, base, med, ratio, goal, met):
        rows.append((metric, base, med, ratio, goal, "-" if met is None else ("yes" if met else "NO")))
    if dense:
        b, m = dense["baseline"], dense["medinterp"]
        sp = b["median_s"] / m["median_s"]
        add(f"dense time N={args.n} (s)", f"{b['median_s']:.2f}", f"{m['median_s']:.2f}", f"{sp:.2f}x faster",
            f">= {GOAL_SPEEDUP:g}x", sp >= GOAL_SPEEDUP)
        add(f"dense CPU time N={args.n} (s)", f"{b['cpu_s']:.2f}", f"{m['cpu_s']:.2f}", f"{b['cpu_s'] / m['cpu_s']:.2f}x less",
            "(info)", None)
        mr = m["extra_mib"] / b["extra_mib"]
        add(f"dense peak RSS N={args.n} (MiB)", f"+{b['extra_mib']:.0f}", f"+{m['extra_mib']:.0f}", f"{mr:.3f}",
            f"<= {GOAL_MEMORY:.3f}", mr <= GOAL_MEMORY)
    if ident:
        add("max |Δ diff|", "", f"{ident['delta']:.2g}", "", f"<= {GOAL_DIFF:g}", ident["delta"] <= GOAL_DIFF)
        for key, nm in (("10", "M^B"), ("01", "M^A")):
            add(f"max |{nm} diff|", "", f"{ident[f'M_{key}']:.2g}", "", f"<= {GOAL_DIFF:g}", ident[f"M_{key}"] <= GOAL_DIFF)
        for key in ("10", "01"):
            add(f"labels equal, direction {key}", "", f"{ident[f'labels_{key}']} ({ident[f'differ_{key}']} differ)", "",
                "True", ident[f"labels_{key}"])
    if agree:
        ref = agree["reference"]
        for key in ("10", "01"):
            add(f"(ref) dense seed+1 vs seed, ARI {key}", "", f"{ref[f'ari_concepts_{key}']:.3f}, top "
                f"{ref[f'matched_{key}']}/{ref[f'top_{key}']}", "", "(info)", None)
        for r in agree["rows"]:
            m = r["landmarks"]
            add(f"time N={agree['n']}, landmarks {m} (s)", f"{agree['dense_s']:.1f} (dense)", f"{r['seconds']:.1f}",
                f"{agree['dense_s'] / r['seconds']:.1f}x faster", "", None)
            for key in ("10", "01"):
                a = r[f"ari_concepts_{key}"]
                add(f"  ARI concepts {key} (cluster labels)", "", f"{a:.3f} ({r[f'ari_labels_{key}']:.3f})", "",
                    f">= {GOAL_ARI:g}", a >= GOAL_ARI)
                add(f"  top-{TOP_CONCEPTS} concepts matched {key}", "", f"{r[f'matched_{key}']}/{r[f'top_{key}']}", "",
                    "all", r[f"matched_{key}"] == r[f"top_{key}"])
    if large:
        est, avail = large["estimate_bytes"] / 2**20, large["available_bytes"]
        refused = avail is not None and large["estimate_bytes"] > avail
        add(f"rdx_large N={large['n']}, m={large['landmarks']} (s)", "refused" if refused else "(not run)",
            f"{large['seconds']:.0f}", "", "completes", True)
        fits = avail is None or large["peak_mib"] * 2**20 < avail
        add(f"  peak RSS N={large['n']} (MiB)", f"+{est:.0f} (dense estimate)",
            f"+{large['extra_mib']:.0f} (peak {large['peak_mib']:.0f})", f"{large['extra_mib'] / est:.3f}", "fits in RAM", fits)
    heads = ("metric", "baseline", "medinterp", "ratio", "goal", "met?")
    w = [max(len(str(r[i])) for r in rows + [heads]) for i in range(6)]
    line = lambda r: " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r))
    print(f"\nsummary (medinterp/rdx.py {rdx_version()}; {load_note()} at the end)")
    print(line(heads)); print("-+-".join("-" * x for x in w))
    for r in rows: print(line(r))


# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="images of the dense comparison (default 2500; quick 400)")
    ap.add_argument("--d", type=int, default=768, help="feature dimension of the synthetic pair (default 768)")
    ap.add_argument("--mode", choices=("v2", "paper"), default="v2", help="RDX recipe (default v2)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per implementation after a warm-up; medians "
                    "are reported (default 3; quick 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads in every process (default: all cores)")
    ap.add_argument("--store", default=None, help="activation store to take the pair from instead of synthetic data")
    ap.add_argument("--layers", nargs=2, default=None, metavar=("L1", "L2"), help="the two layers of --store (A, B)")
    ap.add_argument("--agree-n", type=int, default=None, help="images of the rdx vs rdx_large agreement (default 5000; quick 1000)")
    ap.add_argument("--landmarks", type=int, nargs="+", default=None,
                    help="landmarks of the agreement runs (default 500 1000 2000; quick 200 400)")
    ap.add_argument("--jaccard-match", type=float, default=0.5, help="Jaccard above which a top concept counts as matched")
    ap.add_argument("--large-n", type=int, default=None, help="images of the rdx_large scale run (default 50000; quick 3000)")
    ap.add_argument("--large-landmarks", type=int, default=None, help="landmarks of the scale run (default 4000; quick 400)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--skip-dense", action="store_true", help="skip the dense time/memory/identity comparison")
    ap.add_argument("--skip-agreement", action="store_true", help="skip the rdx vs rdx_large agreement")
    ap.add_argument("--skip-large", action="store_true", help="skip the rdx_large scale run")
    ap.add_argument("--profile", action="store_true", help="also cProfile one run of each dense implementation")
    ap.add_argument("--worker", choices=("baseline", "medinterp", "large"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q = args.quick
    pick = lambda v, full, quick: v if v is not None else (quick if q else full)
    args.n = pick(args.n, 2500, 400)
    args.repeats = pick(args.repeats, 3, 1)
    args.agree_n = pick(args.agree_n, 5000, 1000)
    args.landmarks = pick(args.landmarks, [500, 1000, 2000], [200, 400])
    args.large_n = pick(args.large_n, 50000, 3000)
    args.large_landmarks = pick(args.large_landmarks, 4000, 400)
    args.threads = args.threads or len(os.sched_getaffinity(0))
    if args.worker == "large": return large_worker(Path(args.data), args.mode, args.large_landmarks, args.threads)
    if args.worker: return dense_worker(args.worker, Path(args.data), args.mode, args.repeats, args.threads)
    if args.store and not args.layers: ap.error("--store needs --layers L1 L2")

    for v in THREAD_VARS: os.environ[v] = str(args.threads)
    import numpy as np
    import torch
    import sklearn
    _set_threads(args.threads)
    print(f"RDX benchmark ({load_note()}): mode {args.mode}, {args.threads} threads (torch {torch.__version__}, scikit-learn "
          f"{sklearn.__version__}, numpy {np.__version__}), {os.cpu_count()} CPUs", flush=True)
    print(f"medinterp/rdx.py {rdx_version()}", flush=True)
    def data(n):
        if args.store:
            A, B = load_store(args.store, args.layers, n)
            return A, B, None, f"store {args.store}, layers {args.layers[0]} -> {args.layers[1]}"
        A, B, comp = make_pair(n, args.d)
        return A, B, comp, "synthetic pair (20-component mixture; 3 merges, 3 splits, tanh map)"
    dense = ident = agree = large = None
    with tempfile.TemporaryDirectory(prefix="medinterp-rdx-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_dense:
            A, B, comp, src = data(args.n)
            print(f"\n1. dense path: N={len(A)}, d={A.shape[1]} -> {B.shape[1]}, {src}", flush=True)
            folder = work / "dense"; folder.mkdir()
            np.save(folder / "A.npy", A); np.save(folder / "B.npy", B)
            dense = dense_timing(folder, args.mode, args.repeats, args.threads)
            print("  identity check (this process, not measured):", flush=True)
            ident = identity(A, B, args.mode, comp)
            if args.profile: profile(A, B, args.mode)
        if not args.skip_agreement:
            A, B, comp, src = data(args.agree_n)
            print(f"\n2a. rdx vs rdx_large on the same N={len(A)} images ({src}), landmarks {args.landmarks}", flush=True)
            agree = agreement(A, B, args.mode, args.landmarks, comp, args.jaccard_match)
            if args.profile: profile(A, B, args.mode, landmarks=max(args.landmarks))
            del A, B
        if not args.skip_large:
            print(f"\n2b. rdx_large at scale (synthetic, fresh process)", flush=True)
            large = scale(args.large_n, args.d, args.mode, args.large_landmarks, args.threads, work)
    summary(dense, ident, agree, large, args)
    return {"dense": dense, "identity": ident, "agreement": agree, "large": large}


if __name__ == "__main__":
    main()
