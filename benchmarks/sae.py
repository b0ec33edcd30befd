"""Benchmark `medinterp.sae`: the TopK training step against a minimal PyTorch loop, and a full `train_sae` run at the
size of a BiomedCLIP layer study.

1. Step time (default d=768, expansion 8 -> m=6,144, k=32, batch 1,024, float32, synthetic standardised batches).
   "plain": a minimal TopK SAE loop written here (pre-codes, topk, ReLU, scatter, dense decode, summed squared error,
   backward, Adam) with no decoder-norm constraint, no AuxK and no bookkeeping. "medinterp": `SAETrainer.step`, the
   code `train_sae` runs (loss with AuxK, decoder-gradient projection, Adam, renormalisation, dead-latent counters,
   statistics), once with kernels="dense" (the same products as the plain loop: the framework's overhead) and once with
   kernels="sparse" (the default on CPU at this size). Both use the same Adam (fused where available), the same
   learning rate and the same batches; the implementations alternate in rounds and the medians per step are reported.
   A further row times the sparse step with 10 % of the latents dead, i.e. with the AuxK loss active (a fresh SAE has
   no dead latents, so the other rows never pay for AuxK), and a last one the Matryoshka BatchTopK step (sparse, default
   prefixes 1/32, 1/8, 1/2 and all of m: one reconstruction loss per prefix). Goal: medinterp / plain <= 1.10.
2. A full run: `train_sae` on 100,000 x 768 synthetic activations (a planted sparse dictionary of 8,192 atoms, 24
   active per row, exponential coefficients, plus noise and a mean offset), default config (TopK, expansion 8,
   k 32, batch 1,024, 10 % held out) for `--epochs` epochs (default 1, i.e. 87 steps); the time includes
   standardisation, the per-epoch held-out metrics, the final metrics and the checkpoint. Goal: <= 10 minutes.

No assertions on timings (machines differ and the cores are shared); the table shows the ratios side by side.

    python benchmarks/sae.py                      # both parts (a few minutes on two cores)
    python benchmarks/sae.py --quick              # small sizes, about 30 seconds
    python benchmarks/sae.py --skip-full --rounds 5
    python benchmarks/sae.py --skip-steps --n 100000 --epochs 3
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_note  # noqa: E402  (shared with the other benchmark scripts)

GOAL_OVERHEAD = 1.10
GOAL_FULL_S = 600.0


def plain_loop(d: int, m: int, k: int, lr: float, seed: int = 0):
    "A minimal TopK SAE training step in plain PyTorch; returns `step(x)`."
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(m, d, generator=g)
    w /= w.norm(dim=1, keepdim=True)
    b_pre, b_enc = torch.zeros(d, requires_grad=True), torch.zeros(m, requires_grad=True)
    W_enc, W_dec = w.clone().requires_grad_(), w.clone().requires_grad_()
    opt = torch.optim.Adam([b_pre, W_enc, b_enc, W_dec], lr=lr, fused=True)

    def step(x):
        pre = F.linear(x - b_pre, W_enc, b_enc)
        v, i = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter(1, i, F.relu(v))
        recon = z @ W_dec + b_pre
        loss = (recon - x).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def medinterp_step(d: int, k: int, expansion: int, kernels: str, n_train: int, dead_fraction: float = 0.0,
                   architecture: str = "topk"):
    "`SAETrainer.step` of a fresh SAE (optionally with a fraction of its latents marked dead)."
    from medinterp.sae import SAE, SAEConfig, SAETrainer
    cfg = SAEConfig(architecture=architecture, expansion=expansion, k=k, device="cpu", kernels=kernels)
    sae = SAE(d, cfg)
    tr = SAETrainer(sae, n_train=n_train, total_steps=10 ** 6)
    if dead_fraction:
        n_dead = int(round(dead_fraction * sae.m))
        tr.since[:n_dead] = tr.window           # these count as dead until they fire
        orig = tr.step
        def step(x):
            out = orig(x)
            tr.since[:n_dead] = tr.window       # keep them dead (when they fire they would be revived)
            return out
        return step, tr
    return tr.step, tr


def step_times(d: int, expansion: int, k: int, batch: int, rounds: int, steps: int):
    import numpy as np
    import torch
    from medinterp.sae import SAEConfig
    m = expansion * d
    lr = SAEConfig(expansion=expansion).learning_rate(d)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(batch, d, generator=g) for _ in range(4)]       # standardised-like batches (E||x||^2 = d)
    impls = {"plain PyTorch TopK (dense)": plain_loop(d, m, k, lr),
             "medinterp SAETrainer, dense kernels": medinterp_step(d, k, expansion, "dense", 10 ** 6)[0],
             "medinterp SAETrainer, sparse kernels": medinterp_step(d, k, expansion, "sparse", 10 ** 6)[0],
             "medinterp sparse + AuxK (10 % dead)": medinterp_step(d, k, expansion, "sparse", 10 ** 6, 0.10)[0],
             "medinterp Matryoshka BatchTopK, sparse": medinterp_step(d, k, expansion, "sparse", 10 ** 6,
                                                                      architecture="matryoshka")[0]}
    for f in impls.values():                                           # warm-up (allocator, fused Adam state)
        for x in xs[:2]: f(x)
    times = {name: [] for name in impls}
    for r in range(rounds):
        for name, f in impls.items():
            t0 = time.perf_counter()
            for s in range(steps): f(xs[s % len(xs)])
            times[name].append((time.perf_counter() - t0) / steps)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{v[-1] * 1e3:.0f}" for v in times.values()) + " ms/step", flush=True)
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med["plain PyTorch TopK (dense)"]
    print(f"\n1. training step, d={d}, m={m}, k={k}, batch {batch} (median of {rounds} rounds x {steps} steps)")
    print(f"  {'implementation':40s} {'ms/step':>9s} {'vs plain':>9s}")
    for name, t in med.items(): print(f"  {name:40s} {t * 1e3:9.1f} {t / base:9.3f}")
    over = med["medinterp SAETrainer, dense kernels"] / base
    default = med["medinterp SAETrainer, sparse kernels"] / base
    print(f"  framework overhead (same dense products): {over:.3f} (goal <= {GOAL_OVERHEAD}: "
          f"{'met' if over <= GOAL_OVERHEAD else 'MISSED'}); train_sae's default CPU step: {default:.3f} of the plain loop")
    return med


def synthetic(n: int, d: int, n_atoms: int = 8192, active: int = 24, seed: int = 0):
    "n x d float32: sparse positive combinations of random unit atoms, plus noise and a mean offset."
    import numpy as np
    from scipy import sparse
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    atoms *= rng.lognormal(0, 0.5, (n_atoms, 1)).astype(np.float32)            # atoms of different strengths
    freq = rng.dirichlet(np.full(n_atoms, 0.3))                                  # some atoms common, most rare
    cols = np.stack([rng.choice(n_atoms, active, replace=False, p=freq) for _ in range(min(n, 2000))])
    cols = cols[rng.integers(0, len(cols), n)]                                   # reuse supports (fast), shuffled below
    cols = np.take_along_axis(cols, rng.permuted(np.tile(np.arange(active), (n, 1)), axis=1), 1)
    S = sparse.csr_matrix((rng.exponential(1.0, n * active).astype(np.float32),
                           (np.repeat(np.arange(n), active), cols.reshape(-1))), shape=(n, n_atoms))
    X = np.asarray(S @ atoms, dtype=np.float32)
    X += 0.05 * rng.standard_normal(X.shape, dtype=np.float32) + rng.standard_normal(d).astype(np.float32)
    return X


def full_run(n: int, d: int, epochs: int, work: Path):
    import numpy as np
    import torch
    from medinterp.sae import SAEConfig, train_sae
    t0 = time.perf_counter()
    X = synthetic(n, d)
    gen = time.perf_counter() - t0
    cfg = SAEConfig(epochs=epochs, device="cpu")
    print(f"\n2. train_sae on {n:,} x {d} synthetic activations (made in {gen:.1f} s): {cfg.architecture}, expansion "
          f"{cfg.expansion}, k {cfg.k}, batch {cfg.batch_size}, {epochs} epoch(s), held out {cfg.val_fraction:.0%}", flush=True)
    t0 = time.perf_counter()
    sae = train_sae(X, cfg, out_dir=work / "sae", progress=sys.stderr.isatty())
    secs = time.perf_counter() - t0
    r, m = sae.record, sae.metrics
    print(f"  {r['steps']} steps ({r['kernels']} kernels, {r['torch_threads']} threads) in {secs:.1f} s wall "
          f"({secs / r['steps']:.2f} s/step all included); goal <= {GOAL_FULL_S / 60:.0f} min: "
          f"{'met' if secs <= GOAL_FULL_S else 'MISSED'}")
    print(f"  held-out: FVU {m['fvu']:.3f}, L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%}, cosine {m['cosine']:.3f}, "
          f"l2 ratio {m['l2_ratio']:.3f}; per epoch: " +
          ", ".join(f"{h['val_fvu']:.3f}" for h in sae.history))
    per_epoch = secs / max(1, r["epochs"])
    print(f"  about {per_epoch:.0f} s per epoch: {int(GOAL_FULL_S // per_epoch)} epochs fit in {GOAL_FULL_S / 60:.0f} minutes")
    return {"seconds": secs, "steps": r["steps"], "fvu": m["fvu"], "l0": m["l0"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=None, help="input dimension (default 768; quick 256)")
    ap.add_argument("--expansion", type=int, default=8, help="m = expansion x d (default 8)")
    ap.add_argument("--k", type=int, default=32, help="TopK k (default 32)")
    ap.add_argument("--batch-size", type=int, default=None, help="step-time batch (default 1024; quick 256)")
    ap.add_argument("--rounds", type=int, default=None, help="step-time rounds; medians reported (default 5; quick 2)")
    ap.add_argument("--steps", type=int, default=None, help="steps per round and implementation (default 4; quick 3)")
    ap.add_argument("--n", type=int, default=None, help="rows of the full run (default 100000; quick 10000)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the full run (default 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--skip-steps", action="store_true", help="skip the step-time comparison")
    ap.add_argument("--skip-full", action="store_true", help="skip the full train_sae run")
    args = ap.parse_args(argv)
    q = args.quick
    pick = lambda v, full, quick: v if v is not None else (quick if q else full)
    args.d = pick(args.d, 768, 256)
    args.batch_size = pick(args.batch_size, 1024, 256)
    args.rounds = pick(args.rounds, 5, 2)
    args.steps = pick(args.steps, 4, 3)
    args.n = pick(args.n, 100_000, 10_000)
    args.threads = args.threads or len(os.sched_getaffinity(0))
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    print(f"SAE benchmark ({load_note()}): {args.threads} threads, torch {torch.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs", flush=True)
    out = {}
    if not args.skip_steps:
        out["steps"] = step_times(args.d, args.expansion, args.k, args.batch_size, args.rounds, args.steps)
    if not args.skip_full:
        with tempfile.TemporaryDirectory(prefix="medinterp-sae-bench-") as tmp:
            out["full"] = full_run(args.n, args.d, args.epochs, Path(tmp))
    print(f"(load at the end: {load_note()})")
    return out


if __name__ == "__main__":
    main()
