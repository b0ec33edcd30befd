"""Benchmark the cost of per-concept stability in `medinterp.rdx.rdx` over a whole layer sweep.

`RDXConfig.stability_runs` (default 5; 0 = off) reruns the spectral clustering with other seeds on random
`stability_fraction` (0.9) subsamples; the subsample ranks are read from the full rank matrices, so only the clustering
(eigen solver, k-means, relabelling, grids of the rerun concepts) is repeated. The goal of the issue: a 12-pair sweep at
N = 2,500, d = 768 with stability costs at most 3x the same sweep without it.

What is measured: a synthetic 13-layer chain (float32, like stored activations; see `make_chain`), its 12 consecutive
pairs each run through `rdx(A, B, RDXConfig(stability_runs=0))` ("off") and `rdx(A, B, RDXConfig())` ("on", the
defaults: 5 reruns), both in this process and alternating per pair (which one goes first alternates too), so both see
the same machine load. Each pair is timed `--repeats` times per setting and the median is kept; the sweep time is the sum
of the per-pair medians. One small untimed warm-up run comes first (lazy imports, first BLAS/LAPACK calls). Printed per
pair: both wall times, `meta["seconds"]["stability"]` of the "on" run, the ratio, the load; then the totals, the
ratio on / off against the goal, CPU seconds of both, and what the extra time buys: kept concepts per direction (summed
over pairs) split into reported (no flag) and flagged tiny / catch_all / unstable (a concept may carry several flags),
and the median stability (mean best-match Jaccard of a concept's members over the reruns). The main clustering is the
same with and without stability (same seed); the script checks that the labels agree.

The machine's load and Linux CPU pressure are printed beside the measurements (other processes share the cores, so
timings are noisy; the ratio is the robust number since both settings run interleaved). Threads: `--threads` (default
all cores) for torch and BLAS. The default run takes about 4 minutes on two idle cores (3 repeats).

    python benchmarks/stability.py                     # N=2500, d=768, 13 layers, 3 repeats
    python benchmarks/stability.py --quick             # N=600, d=128, 4 layers, 1 repeat: a few seconds
    python benchmarks/stability.py --repeats 1 --threads 1
    python benchmarks/stability.py --profile           # + cProfile of one stability run (pair 0), where the time goes
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note  # noqa: E402  (shared with the other benchmark scripts)
from rdx import THREAD_VARS, _cpu_s, _set_threads, rdx_version  # noqa: E402  (benchmarks/rdx.py)

GOAL_RATIO = 3.0            # sweep time with stability / without
FLAGS = ("tiny", "catch_all", "unstable")


# ------------------------------------------------------------------------------------------------ data
def make_chain(n: int, d: int = 768, layers: int = 13, seed: int = 0, n_components: int = 20, latent: int = 32,
               events: int = 3):
    """Structured synthetic chain of `layers` representations (float32, n x d each) of the same n images, and the
    mixture component of every image per layer.

    Latent codes z (n x `latent`) start as a Gaussian mixture of `n_components` components (random weights, centres and
    spreads). From one layer to the next, `events` components (of at least 10 images) each merge into another one
    (their images move onto its centre and take its label) and `events` components split in two halves along a random
    hyperplane that drift apart (one half gets a new label), so every consecutive pair has real differences for RDX
    to find. Layer l is the fixed random map tanh(z_l W1_l + b1) W2 to R^d plus isotropic noise (15% of its spread),
    W1_l a small per-layer perturbation of a shared W1; layer 0 is linear (z_0 in a random orthonormal subspace plus noise), as in
    `make_pair` of benchmarks/rdx.py. Seeded; a fraction of a second per layer at n=2500, d=768."""
    import numpy as np
    rng = np.random.default_rng(seed)
    k = n_components
    comp = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 8.0)))
    centres = {c: rng.normal(size=latent) * 3.0 for c in range(k)}
    spread = rng.uniform(0.7, 1.3, size=k)
    z = np.stack([centres[c] for c in comp]) + rng.normal(size=(n, latent)) * spread[comp, None]
    H = 256
    W1 = rng.normal(size=(latent, H)) * (0.35 / np.sqrt(latent))
    b1 = rng.normal(size=H) * 0.3
    W2 = rng.normal(size=(H, d)) / np.sqrt(H)
    U = np.linalg.qr(rng.normal(size=(d, latent)))[0].T                    # latent x d, orthonormal rows
    out, comps = [], []
    for l in range(layers):
        if l == 0:
            X = z @ U + 0.15 * rng.normal(size=(n, d))
        else:
            alive = [c for c in np.unique(comp) if (comp == c).sum() >= 10]
            e = min(events, len(alive) // 3)
            picks = rng.choice(alive, size=3 * e, replace=False)
            for a, b in picks[:2 * e].reshape(e, 2):               # merge a into b
                m = comp == a
                z[m] += centres[b] - centres[a]
                comp[m] = b
            for c in picks[2 * e:]:                                     # split c
                m = np.flatnonzero(comp == c)
                v, u = rng.normal(size=latent), rng.normal(size=latent)
                side = (z[m] - centres[c]) @ v >= 0
                shift = 3.0 * u / np.linalg.norm(u)
                z[m[side]] += shift; z[m[~side]] -= shift
                new = max(centres) + 1
                centres[new] = centres[c] + shift; centres[c] = centres[c] - shift
                comp[m[side]] = new
            W1l = W1 + rng.normal(size=W1.shape) * (0.1 / np.sqrt(latent))
            Xc = np.tanh(z @ W1l + b1) @ W2
            X = Xc + 0.15 * Xc.std() * rng.normal(size=(n, d))
        out.append(X.astype(np.float32)); comps.append(comp.copy())
    return out, comps


# ------------------------------------------------------------------------------------------------ measuring
def concept_counts(res) -> dict:
    "Kept concepts per direction of one result: kept, reported (no flag), each flag, and the stabilities."
    out = {}
    for key, d in res.directions.items():
        q = [d.quality.get(c, {}) for c in d.kept]
        out[key] = {"kept": len(d.kept), "reported": sum(not x.get("flags") for x in q),
                    **{f: sum(f in x.get("flags", ()) for x in q) for f in FLAGS},
                    "stability": [x["stability"] for x in q if x.get("stability") is not None],
                    "grid_stability": [x["grid_stability"] for x in q if x.get("grid_stability") is not None]}
    return out


def time_pair(A, B, cfg, repeats: int) -> tuple[float, float, object, list]:
    "Median wall and CPU seconds of `repeats` runs of rdx(A, B, cfg), the last result and every run's meta seconds."
    from medinterp.rdx import rdx
    walls, cpus, metas = [], [], []
    for _ in range(repeats):
        c0, t0 = _cpu_s(), time.perf_counter()
        res = rdx(A, B, cfg)
        walls.append(time.perf_counter() - t0); cpus.append(_cpu_s() - c0); metas.append(res.meta["seconds"])
    return statistics.median(walls), statistics.median(cpus), res, metas


def sweep(chain, repeats: int) -> list[dict]:
    "All consecutive pairs, off and on alternating (the first of the two alternates per pair)."
    import numpy as np
    from medinterp.rdx import RDXConfig
    cfgs = {"off": RDXConfig(stability_runs=0), "on": RDXConfig()}
    rows = []
    print(f"  {'pair':>7} | {'off (s)':>7} | {'on (s)':>7} | {'stab (s)':>8} | {'on/off':>6} | reported 10/01 (flagged)"
          f" | median stab. | load", flush=True)
    for p in range(len(chain) - 1):
        A, B = chain[p], chain[p + 1]
        order = ("off", "on") if p % 2 == 0 else ("on", "off")
        r = {}
        for which in order:
            r[which] = time_pair(A, B, cfgs[which], repeats)
        (off, off_cpu, res_off, _), (on, on_cpu, res_on, metas) = r["off"], r["on"]
        stab = statistics.median(m["stability"] for m in metas)
        counts, counts_off = concept_counts(res_on), concept_counts(res_off)
        same = all(np.array_equal(res_on[k].labels, res_off[k].labels) for k in ("10", "01"))
        row = {"pair": p, "off": off, "on": on, "off_cpu": off_cpu, "on_cpu": on_cpu, "stability": stab,
               "delta": statistics.median(m["delta"] for m in metas), "counts": counts, "counts_off": counts_off,
               "same_labels": same, "load": load_note()}
        rows.append(row)
        st = counts["10"]["stability"] + counts["01"]["stability"]
        rep = "/".join(f"{counts[k]['reported']}" for k in ("10", "01"))
        fl = "/".join(f"{counts[k]['kept'] - counts[k]['reported']}" for k in ("10", "01"))
        cell = f"{rep:>5} ({fl}){'' if same else ' LABELS DIFFER'}"
        print(f"  {p:>2}->{p + 1:<3} | {off:7.2f} | {on:7.2f} | {stab:8.2f} | {on / off:6.2f} | {cell:<24} | "
              f"{statistics.median(st) if st else float('nan'):12.3f} | {row['load']}", flush=True)
    return rows


def profile(A, B, top: int = 25):
    "cProfile of one rdx run with stability (defaults), top entries by cumulative and by internal time."
    import cProfile
    import pstats
    from medinterp.rdx import rdx, RDXConfig
    pr = cProfile.Profile()
    pr.enable(); res = rdx(A, B, RDXConfig()); pr.disable()
    print(f"\ncProfile of one rdx run with stability (N={len(A)}; meta seconds {res.meta['seconds']}; {load_note()})")
    for key in ("cumulative", "tottime"):
        print(f"\n  by {key}:")
        pstats.Stats(pr, stream=sys.stdout).sort_stats(key).print_stats(top)


# ------------------------------------------------------------------------------------------------ summary
def summary(rows: list[dict]) -> dict:
    import numpy as np
    from medinterp.rdx import RDXConfig
    off, on = sum(r["off"] for r in rows), sum(r["on"] for r in rows)
    off_cpu, on_cpu = sum(r["off_cpu"] for r in rows), sum(r["on_cpu"] for r in rows)
    stab = sum(r["stability"] for r in rows)
    ratio = on / off
    print(f"\nsummary over {len(rows)} pairs (medinterp/rdx.py {rdx_version()}; {load_note()} at the end)")
    l_off, l_on = "without stability (stability_runs=0):", f"with stability (defaults, {RDXConfig().stability_runs} reruns):"
    w = max(len(l_off), len(l_on))
    print(f"  sweep {l_off:<{w}} {off:8.2f} s wall, {off_cpu:8.2f} s CPU")
    print(f"  sweep {l_on:<{w}} {on:8.2f} s wall, {on_cpu:8.2f} s CPU; of it "
          f"meta['seconds']['stability'] {stab:.2f} s ({stab / on:.0%})")
    print(f"  per-pair ratio on/off: median {statistics.median(r['on'] / r['off'] for r in rows):.2f}, "
          f"min {min(r['on'] / r['off'] for r in rows):.2f}, max {max(r['on'] / r['off'] for r in rows):.2f}")
    print(f"  ratio (with stability / without) = {ratio:.2f}   "
          f"goal <= {GOAL_RATIO:.1f}: {'met' if ratio <= GOAL_RATIO else 'NOT met'}")
    print(f"  CPU ratio (with / without) = {on_cpu / off_cpu:.2f}")
    print("  what the extra time buys (kept concepts summed over pairs; a concept may carry several flags):")
    agg = {}
    for key in ("10", "01"):
        tot = {f: sum(r["counts"][key][f] for r in rows) for f in ("kept", "reported", *FLAGS)}
        tot_off = {f: sum(r["counts_off"][key][f] for r in rows) for f in ("kept", "reported", *FLAGS)}
        st = [s for r in rows for s in r["counts"][key]["stability"]]
        gs = [s for r in rows for s in r["counts"][key]["grid_stability"]]
        agg[key] = {"with": tot, "without": tot_off, "stability": st}
        print(f"    direction {key}: kept {tot['kept']}, reported {tot['reported']}, flagged tiny {tot['tiny']} / "
              f"catch_all {tot['catch_all']} / unstable {tot['unstable']}; without stability reported "
              f"{tot_off['reported']} (tiny {tot_off['tiny']} / catch_all {tot_off['catch_all']}); median stability "
              f"{np.median(st) if st else float('nan'):.3f} (grid {np.median(gs) if gs else float('nan'):.3f}, "
              f"{sum(s < 0.5 for s in st)} of {len(st)} below 0.5)")
    st = [s for key in agg for s in agg[key]["stability"]]
    print(f"    both directions: median stability {np.median(st) if st else float('nan'):.3f}; same main clustering "
          f"with and without stability in {sum(r['same_labels'] for r in rows)} of {len(rows)} pairs")
    return {"off": off, "on": on, "ratio": ratio, "met": ratio <= GOAL_RATIO, "stability": stab, "counts": agg}


# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="images (default 2500; quick 600)")
    ap.add_argument("--d", type=int, default=None, help="feature dimension (default 768; quick 128)")
    ap.add_argument("--layers", type=int, default=None, help="layers of the chain, pairs = layers - 1 (default 13; quick 4)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per pair and setting; medians are kept "
                    "(default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic chain")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--profile", action="store_true", help="also cProfile one stability run on pair 0")
    args = ap.parse_args(argv)
    q = args.quick
    pick = lambda v, full, quick: v if v is not None else (quick if q else full)
    args.n, args.d = pick(args.n, 2500, 600), pick(args.d, 768, 128)
    args.layers, args.repeats = pick(args.layers, 13, 4), pick(args.repeats, 3, 1)
    if args.layers < 2: ap.error("--layers must be >= 2")
    args.threads = args.threads or len(os.sched_getaffinity(0))
    for v in THREAD_VARS: os.environ[v] = str(args.threads)
    import numpy as np
    import torch
    import sklearn
    from medinterp.rdx import rdx, RDXConfig
    _set_threads(args.threads)
    print(f"RDX stability benchmark ({load_note()}): {args.threads} threads (torch {torch.__version__}, scikit-learn "
          f"{sklearn.__version__}, numpy {np.__version__}), {os.cpu_count()} CPUs", flush=True)
    print(f"medinterp/rdx.py {rdx_version()}; defaults {RDXConfig().stability_runs} reruns on "
          f"{RDXConfig().stability_fraction:g} subsamples", flush=True)
    t0 = time.perf_counter()
    chain, comps = make_chain(args.n, args.d, args.layers, seed=args.seed)
    print(f"\nchain: {args.layers} layers ({args.layers - 1} pairs), N={args.n}, d={args.d}, float32; components per "
          f"layer {[len(np.unique(c)) for c in comps]} (3 merges and 3 splits per step); made in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    m = min(300, args.n)
    rdx(chain[0][:m], chain[1][:m], RDXConfig())                              # warm-up, not measured
    print(f"timing {args.repeats} run(s) per pair and setting (medians), off/on alternating:", flush=True)
    rows = sweep(chain, args.repeats)
    out = summary(rows)
    if args.profile: profile(chain[0], chain[1])
    return out


if __name__ == "__main__":
    main()
