"""Benchmark `medinterp.extract.extract` on a model with BiomedCLIP's vision architecture (timm vit_base_patch16_224,
random init, 224 px phantoms): all 13 layers (pre_trunk + 12 blocks), CLS + mean, written to disk.

1. Throughput: extraction (decode + preprocess + forward + hooks + writes) against a bare forward pass of the same
   model on the same, already preprocessed batches, in images/s and as a ratio (goal >= 0.90). Runs alternate and
   the medians are reported; the extraction time includes everything `extract` does (probe pass, setup, index).
2. Memory: peak RSS of a fresh process extracting N=256 and N=1,024 images (goal: flat), each N in its own
   subprocess, with the RSS right after loading the model for reference.
3. bf16 vs float32 (issue 17): the BiomedCLIP-shaped model (`write_biomedclip_shaped`, open_clip `local-dir:`, RANDOM
   weights) extracts the first --bf16-n cxr-demo X-rays (or phantoms) at both precisions, --bf16-repeats times each
   in alternating order: the throughput of each and their ratio; per layer and pooling the debiased linear CKA,
   10-NN overlap and relative error of the stored bf16 activations against float32; RDX (same config and seed) on
   one pair (default trunk.blocks.0 -> trunk.blocks.11, mean pooled) at both precisions: ARI of the cluster and
   concept labels per direction and the concepts matched (Jaccard > 0.5), beside float32 seed+1 vs seed for scale.
   It first prints the machine: cores, torch threads, the CPU's bf16 flags (avx512_bf16, amx_bf16) and oneDNN.
   Whether bf16 is faster depends on the CPU (native bf16 instructions or not) and on the load; the fidelity does not.

ViT-B/16 runs at about 5 images/s in float32 on two idle laptop cores, so the default run takes about 10 minutes
(most of it the N=1,024 memory run).

    python benchmarks/extract.py                               # --n 64 --batch-size 16 --repeats 3, RSS at 256 and 1024
    python benchmarks/extract.py --skip-rss --skip-bf16 --n 96 # throughput only
    python benchmarks/extract.py --rss-n 128 512 --skip-throughput --skip-bf16
    python benchmarks/extract.py --bf16-only --bf16-n 128      # bf16 vs float32 only (--bf16-n 64 --bf16-repeats 2)
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

GOAL_RATIO = 0.90
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def make_backbone():
    "timm vit_base_patch16_224 (BiomedCLIP's vision trunk), random init, wrapped with all 13 medinterp layers."
    import numpy as np
    import timm
    import torch
    from medinterp.models import Backbone, vit_layers
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]

    def preprocess(img):
        x = torch.as_tensor(np.asarray(img, np.float32))[None, None]
        if x.shape[-2:] != (224, 224):
            x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
        return (x[0].clamp(0, 1).expand(3, -1, -1) - mean) / std

    return Backbone("vit_base_patch16_224 (random init)", vit, preprocess, vit_layers(vit), image_size=224,
                    preprocess_info={"size": 224, "mean": CLIP_MEAN, "std": CLIP_STD})


def phantom_folder(root: Path, n: int):
    from medinterp.phantoms import make_phantoms
    return make_phantoms(n, size=224, seed=0, out_dir=root / "phantoms", progress=False)


def throughput(data_dir: Path, n: int, batch_size: int, repeats: int, precision: str, work: Path):
    import torch
    from medinterp.data import CXRDataset
    from medinterp.core import autocast
    from medinterp.extract import extract
    ds = CXRDataset.from_folder(data_dir, data_dir / "metadata.csv", verify="none").subset(range(n))
    bb = make_backbone()
    batches = [bb.batch([ds.image(i) for i in range(b, min(b + batch_size, n))]) for b in range(0, n, batch_size)]
    with torch.no_grad(), autocast("cpu", precision): bb(batches[0][:2])          # warm-up
    bare, ext, probe = [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad(), autocast("cpu", precision):
            for x in batches: bb(x)
        bare.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        with torch.no_grad(), autocast("cpu", precision): bb(batches[0][:1])      # what extract's probe pass costs
        probe.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store = extract(ds, bb, out_dir=work / f"run{r}", pooling=("cls", "mean"), batch_size=batch_size,
                        precision=precision, progress=False, verbose=False)
        ext.append(n / (time.perf_counter() - t0))
        assert store.complete and len(store.layers) == 13
        size = sum(f.stat().st_size for f in store.path.iterdir())
        print(f"  run {r + 1}: bare forward {bare[-1]:6.2f} img/s   extract to disk {ext[-1]:6.2f} img/s   "
              f"ratio {ext[-1] / bare[-1]:.3f}   ({size / 1e6:.1f} MB written)", flush=True)
    b, e = statistics.median(bare), statistics.median(ext)
    ratios = [x / y for x, y in zip(ext, bare)]
    print(f"median: bare forward {b:.2f} img/s, extract {e:.2f} img/s, ratio {e / b:.3f} "
          f"(median of per-run ratios {statistics.median(ratios):.3f}; goal >= {GOAL_RATIO}: "
          f"{'met' if statistics.median(ratios) >= GOAL_RATIO else 'MISSED'})")
    pr = statistics.median(probe)
    print(f"  a fresh store's one-image probe pass costs {pr:.2f} s once per store, "
          f"{pr / (n / e):.1%} of this run's time; it fades with N")
    return b, e


def rss_child(data_dir: Path, n: int, batch_size: int, precision: str, out: Path):
    "Runs in a fresh process: extract the first n images, report peak RSS (MiB) as one JSON line."
    import resource
    import psutil
    from medinterp.data import CXRDataset
    from medinterp.extract import extract
    ds = CXRDataset.from_folder(data_dir, data_dir / "metadata.csv", verify="none").subset(range(n))
    bb = make_backbone()
    before = psutil.Process().memory_info().rss / 2 ** 20
    t0 = time.perf_counter()
    store = extract(ds, bb, out_dir=out, pooling=("cls", "mean"), batch_size=batch_size, precision=precision,
                    progress=False, verbose=False)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux
    assert store.complete
    disk = sum(f.stat().st_size for f in Path(out).iterdir()) / 2 ** 20
    print(json.dumps({"n": n, "before_mib": before, "peak_mib": peak, "seconds": secs, "disk_mib": disk}))


def memory(data_dir: Path, sizes, batch_size: int, precision: str, work: Path):
    res = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--_rss-child", str(n), "--data", str(data_dir), "--batch-size",
               str(batch_size), "--rss-precision", precision, "--out", str(work / f"rss{n}")]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode: raise RuntimeError(f"RSS run for N={n} failed:\n{p.stderr[-3000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        res.append(r)
        print(f"  N={n:5d}: peak RSS {r['peak_mib']:7.1f} MiB (after loading the model: {r['before_mib']:.1f} MiB; "
              f"extraction adds {r['peak_mib'] - r['before_mib']:.1f} MiB)   {r['seconds']:.0f} s, "
              f"{n / r['seconds']:.1f} img/s, store {r['disk_mib']:.1f} MiB on disk", flush=True)
    lo, hi = res[0], res[-1]
    print(f"peak RSS N={hi['n']} / N={lo['n']}: {hi['peak_mib'] / lo['peak_mib']:.3f}  (store on disk grew "
          f"{hi['disk_mib'] / lo['disk_mib']:.1f}x; extraction's own share {hi['peak_mib'] - hi['before_mib']:.1f} vs "
          f"{lo['peak_mib'] - lo['before_mib']:.1f} MiB)")
    return res


# ---------------------------------------------------------------------------------------------------------------
# 3. bf16 vs float32 on the BiomedCLIP-shaped model: throughput, fidelity of the stored activations, RDX agreement
# ---------------------------------------------------------------------------------------------------------------
PRECISIONS = ("float32", "bfloat16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags(cpuinfo: str) -> set:
    "The CPU feature flags listed in the text of /proc/cpuinfo."
    return {f for line in cpuinfo.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
            for f in line.split(":", 1)[1].split()}


def machine_facts() -> dict:
    "Cores, torch threads and what this CPU offers for bf16 (native instructions, oneDNN)."
    import platform
    import torch
    try: info = open("/proc/cpuinfo").read()
    except OSError: info = ""
    flags = cpu_flags(info)
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    try: onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError): onednn_bf16 = None
    try: capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError: capability = None
    return {"cpu": model or "unknown", "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
            "onednn_bf16": onednn_bf16, "capability": capability,
            "flags": {f: (f in flags) if flags else None for f in BF16_FLAGS}}


def print_machine(m: dict):
    yes = lambda v: "unknown" if v is None else ("yes" if v else "no")
    native = any(m["flags"].values())
    print(f"machine: {m['cpu']}; {m['cpus']} CPUs ({m['usable_cpus']} usable); torch {m['torch']} with "
          f"{m['threads']} threads ({m['interop_threads']} inter-op); {load_note()}")
    print(f"  bf16 support: " + ", ".join(f"{f} {yes(v)}" for f, v in m["flags"].items()) +
          f"; oneDNN available {yes(m['mkldnn'])}, oneDNN bf16 {yes(m['onednn_bf16'])}; "
          f"torch CPU capability {m['capability']} -> native bf16 matmuls: {'yes' if native else 'no'}", flush=True)


def biomedclip_backbone(work: Path, seed: int = 0):
    "The BiomedCLIP-shaped open_clip checkpoint (ViT-B/16, 224 px; RANDOM weights from `seed`) loaded as `local-dir:`."
    from medinterp.models import load_backbone, write_biomedclip_shaped
    folder = write_biomedclip_shaped(work / "biomedclip-shaped", seed=seed, overwrite=True)
    return load_backbone(f"local-dir:{folder}")


def bf16_images(source: str, n: int, work: Path):
    "The first `n` cxr-demo X-rays (at most 241) or `n` 224 px phantoms, as a `CXRDataset`."
    from medinterp.data import CXRDataset
    if source == "cxr-demo":
        ds = CXRDataset.from_cxr_demo(progress=False)
        if not 1 <= n <= len(ds): raise ValueError(f"--bf16-n must lie in 1..{len(ds)} for cxr-demo, got {n}")
        return ds.subset(range(n))
    if source != "phantoms": raise ValueError(f"--bf16-data must be cxr-demo or phantoms, got {source!r}")
    folder = work / f"bf16-phantoms-{n}"
    if not folder.exists(): phantom_folder(folder, n)
    return CXRDataset.from_folder(folder / "phantoms", folder / "phantoms" / "metadata.csv", verify="none")


def precision_runs(ds, bb, work: Path, batch_size: int, repeats: int) -> dict:
    """Extract `ds` (all layers, cls + mean) `repeats` times per precision, alternating which goes first; returns per
    precision the img/s of each run, their median and the last run's store (and whether repeat runs are bit-equal)."""
    import numpy as np
    from medinterp.extract import extract
    res = {p: {"img_s": [], "stores": []} for p in PRECISIONS}
    n = len(ds)
    for r in range(repeats):
        for p in (PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]):
            t0 = time.perf_counter()
            store = extract(ds, bb, out_dir=work / f"bf16-{p}-{r}", pooling=("cls", "mean"), batch_size=batch_size,
                            precision=p, progress=False, verbose=False)
            res[p]["img_s"].append(n / (time.perf_counter() - t0))
            res[p]["stores"].append(store)
            assert store.complete and store._m["precision"] == p
        print(f"  run {r + 1}: " + "   ".join(f"{p} {res[p]['img_s'][-1]:6.2f} img/s" for p in PRECISIONS) +
              f"   ratio bf16/f32 {res['bfloat16']['img_s'][-1] / res['float32']['img_s'][-1]:.3f}", flush=True)
    for p in PRECISIONS:
        s = res[p].pop("stores")
        res[p]["store"] = s[-1]
        res[p]["median_img_s"] = statistics.median(res[p]["img_s"])
        res[p]["repeatable"] = all(np.array_equal(s[0].load(l, q), o.load(l, q)) for o in s[1:]
                                   for l in s[0].layers for q in s[0].poolings)
    return res


def fidelity(ref, other, k: int = 10) -> list:
    """Per layer and pooling: debiased linear CKA, k-NN overlap and relative L2 error of `other`'s rows against `ref`'s;
    CKA and k-NN are nan where `ref` holds the same vector for every image (nothing to compare)."""
    import numpy as np
    from medinterp.compare import knn_overlap, linear_cka
    if list(ref.ids) != list(other.ids): raise ValueError(f"the stores {ref.path} and {other.path} hold other images")
    rows = []
    for layer in ref.layers:
        for pooling in ref.poolings:
            a, b = ref.load(layer, pooling, mmap=False), other.load(layer, pooling, mmap=False)
            kk, same = min(k, len(a) - 1), bool((a == a[:1]).all())   # e.g. pre_trunk's CLS: one vector for all
            rows.append({"layer": layer, "pooling": pooling, "k": kk, "constant": same,
                         "cka": float("nan") if same else linear_cka(a, b),
                         "knn": float("nan") if same else knn_overlap(a, b, k=kk),
                         "rel_err": float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))})
    return rows


def _concept_labels(d):
    import numpy as np
    return np.where(np.isin(d.labels, d.kept), d.labels, -1)


def _partition_agreement(x, y, match: float) -> dict:
    "ARI of cluster and concept labels and the concepts of `x` matched in `y` (Jaccard > `match`), per direction."
    from sklearn.metrics import adjusted_rand_score
    out = {}
    for key in ("10", "01"):
        dx, dy = x[key], y[key]
        ys = [set(dy.members(c).tolist()) for c in dy.kept]
        best = [max((len(a & b) / len(a | b) for b in ys), default=0.0)
                for a in (set(dx.members(c).tolist()) for c in dx.kept)]
        out[key] = {"ari_labels": float(adjusted_rand_score(dx.labels, dy.labels)),
                    "ari_concepts": float(adjusted_rand_score(_concept_labels(dx), _concept_labels(dy))),
                    "kept": (len(dx.kept), len(dy.kept)), "matched": sum(j > match for j in best), "jaccard": best}
    return out


def rdx_agreement(ref, other, pair, config, pooling: str = "mean", match: float = 0.5) -> dict:
    """RDX (same config and seed) on the float32 and the bf16 activations of `pair` pooled by `pooling`; for scale,
    float32 with seed+1 against float32 (how much the clustering moves by itself)."""
    from medinterp.rdx import rdx
    a, b = pair
    runs = {}
    for name, store, cfg in (("float32", ref, config), ("bfloat16", other, config),
                             ("float32 seed+1", ref, config.replace(seed=config.seed + 1))):
        runs[name] = rdx(store.load(a, pooling, mmap=False), store.load(b, pooling, mmap=False), cfg, layers=pair)
    return {"pair": tuple(pair), "pooling": pooling, "seed": config.seed,
            "bf16": _partition_agreement(runs["float32"], runs["bfloat16"], match),
            "seed+1": _partition_agreement(runs["float32"], runs["float32 seed+1"], match)}


def print_bf16(runs: dict, fid: list, agree: dict, n: int):
    f32, b16 = runs["float32"]["median_img_s"], runs["bfloat16"]["median_img_s"]
    print(f"throughput (median of {len(runs['float32']['img_s'])} runs, extract to disk, N={n}): float32 {f32:.2f} img/s, "
          f"bfloat16 {b16:.2f} img/s, ratio bf16/f32 {b16 / f32:.3f} ({'bf16 faster' if b16 > f32 else 'bf16 slower'}); "
          f"{load_note()} at the end")
    print("  repeat runs bit-identical: " + ", ".join(f"{p} {'yes' if runs[p]['repeatable'] else 'no'}" for p in PRECISIONS))
    print(f"fidelity of the stored bf16 activations against float32 (debiased linear CKA, {fid[0]['k']}-NN overlap, "
          "relative L2 error ||bf16 - f32|| / ||f32||):")
    print(f"  {'layer':<18}{'pooling':<8}{'CKA':>10}{'kNN':>8}{'rel err':>10}")
    for r in fid:
        note = "   (the same vector for every image)" if r["constant"] else ""
        print(f"  {r['layer']:<18}{r['pooling']:<8}{r['cka']:10.6f}{r['knn']:8.3f}{r['rel_err']:10.2e}{note}")
    var = [r for r in fid if not r["constant"]]
    worst = lambda key: min(var, key=lambda r: r[key])
    wc, wk, we = worst("cka"), worst("knn"), max(fid, key=lambda r: r["rel_err"])
    print(f"  worst: CKA {wc['cka']:.6f} ({wc['layer']} {wc['pooling']}), {fid[0]['k']}-NN overlap {wk['knn']:.3f} "
          f"({wk['layer']} {wk['pooling']}), relative error {we['rel_err']:.2e} ({we['layer']} {we['pooling']})")
    a, b = agree["pair"]
    print(f"RDX concept agreement on {a} -> {b} ({agree['pooling']}, seed {agree['seed']}), bf16 vs float32; "
          "in brackets float32 seed+1 vs float32, the clustering's own wobble:")
    for key in ("10", "01"):
        x, s = agree["bf16"][key], agree["seed+1"][key]
        print(f"  direction {key}: ARI cluster labels {x['ari_labels']:.3f} ({s['ari_labels']:.3f}), ARI concept labels "
              f"{x['ari_concepts']:.3f} ({s['ari_concepts']:.3f}); concepts f32/bf16 {x['kept'][0]}/{x['kept'][1]}, "
              f"{x['matched']} of {x['kept'][0]} matched (Jaccard > 0.5) ({s['matched']} of {s['kept'][0]})", flush=True)


def default_pair(bb) -> tuple:
    "The RDX pair of the bf16 comparison: the first block after the input layer and the last layer."
    layers = bb.default_layers
    return (layers[1], layers[-1]) if len(layers) > 2 else tuple(layers[-2:])


def bf16_compare(ds, bb, work: Path, *, batch_size: int = 16, repeats: int = 2, pair=None, rdx_config=None,
                 rdx_pooling: str = "mean", k: int = 10) -> dict:
    """Section 3 on any backbone and dataset: runs, fidelity, RDX agreement; prints them and returns the numbers.
    `pair` defaults to the first block and the last layer (in a random-weight ViT neighbouring blocks barely differ
    and RDX finds no concepts between them)."""
    from medinterp.rdx import RDXConfig
    pair = tuple(pair or default_pair(bb))
    runs = precision_runs(ds, bb, work, batch_size, repeats)
    fid = fidelity(runs["float32"]["store"], runs["bfloat16"]["store"], k)
    agree = rdx_agreement(runs["float32"]["store"], runs["bfloat16"]["store"], pair, rdx_config or RDXConfig(),
                          rdx_pooling)
    print_bf16(runs, fid, agree, len(ds))
    return {"runs": runs, "fidelity": fid, "rdx": agree}


def bf16_section(args, work: Path) -> dict:
    "Section 3 as the command line asks: the BiomedCLIP-shaped model with random weights on cxr-demo or phantoms."
    from medinterp.rdx import RDXConfig
    print_machine(machine_facts())
    t0 = time.perf_counter()
    ds = bf16_images(args.bf16_data, args.bf16_n, work)
    bb = biomedclip_backbone(work, seed=args.model_seed)
    pair = bb.check_layers(args.rdx_pair or default_pair(bb))
    print(f"bf16 vs float32: {bb.key.split(':', 1)[0]}: BiomedCLIP-shaped ViT-B/16 (open_clip config of BiomedCLIP, "
          f"RANDOM weights, seed {args.model_seed}: the numbers say how bf16 treats this architecture, not the trained "
          f"model); {len(ds)} {args.bf16_data} images, batch {args.batch_size}, {len(bb.default_layers)} layers x "
          f"(cls, mean), {args.bf16_repeats} runs per precision alternating; RDX pair {pair[0]} -> {pair[1]} "
          f"({args.rdx_pooling}) "
          f"(setup {time.perf_counter() - t0:.0f} s)", flush=True)
    return bf16_compare(ds, bb, work, batch_size=args.batch_size, repeats=args.bf16_repeats, pair=pair,
                        rdx_config=RDXConfig(seed=args.rdx_seed), rdx_pooling=args.rdx_pooling, k=10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="images per throughput run (default 64)")
    ap.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs; medians are reported (default 3)")
    ap.add_argument("--precision", default="float32", help="forward precision of the throughput runs (default float32)")
    ap.add_argument("--rss-n", type=int, nargs="+", default=[256, 1024], help="N of the peak-RSS runs (default 256 1024)")
    ap.add_argument("--rss-precision", default="float32", help="forward precision of the RSS runs (default float32)")
    ap.add_argument("--skip-rss", action="store_true", help="no peak-RSS runs")
    ap.add_argument("--skip-throughput", action="store_true", help="no throughput runs")
    ap.add_argument("--skip-bf16", action="store_true", help="no bf16 vs float32 comparison")
    ap.add_argument("--bf16-only", action="store_true", help="only the bf16 vs float32 comparison")
    ap.add_argument("--bf16-n", type=int, default=64, help="images of the bf16 comparison (default 64)")
    ap.add_argument("--bf16-data", choices=("cxr-demo", "phantoms"), default="cxr-demo",
                    help="images of the bf16 comparison: the repository's cxr-demo X-rays (up to 241) or phantoms")
    ap.add_argument("--bf16-repeats", type=int, default=2, help="extractions per precision (default 2)")
    ap.add_argument("--rdx-pair", nargs=2, default=None, metavar=("A", "B"),
                    help="layer pair of the RDX agreement (default: trunk.blocks.0 and the last block)")
    ap.add_argument("--rdx-pooling", choices=("cls", "mean"), default="mean",
                    help="pooling of the RDX agreement (default mean; pre_trunk's CLS is the same for every image)")
    ap.add_argument("--rdx-seed", type=int, default=0, help="RDX seed, the same for both precisions (default 0)")
    ap.add_argument("--model-seed", type=int, default=0, help="seed of the random BiomedCLIP-shaped weights (default 0)")
    ap.add_argument("--_rss-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._rss_child is not None:
        return rss_child(Path(args.data), args._rss_child, args.batch_size, args.rss_precision, Path(args.out))
    if args.bf16_only: args.skip_rss = args.skip_throughput = True
    if args.bf16_n < 1 or args.bf16_repeats < 1: ap.error("--bf16-n and --bf16-repeats must be positive")
    if args.bf16_data == "cxr-demo" and args.bf16_n > 241: ap.error("cxr-demo has 241 images: use --bf16-n <= 241 "
                                                                    "or --bf16-data phantoms")

    import torch
    out = {}
    with tempfile.TemporaryDirectory(prefix="medinterp-bench-") as tmp:
        work = Path(tmp)
        if not (args.skip_throughput and args.skip_rss):
            n_data = max(([] if args.skip_throughput else [args.n]) + ([] if args.skip_rss else args.rss_n))
            t0 = time.perf_counter()
            phantom_folder(work, n_data)
            data = work / "phantoms"
            print(f"{n_data} phantoms at 224 px in {time.perf_counter() - t0:.0f} s; torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
        if not args.skip_throughput:
            print(f"throughput: N={args.n}, batch {args.batch_size}, 13 layers x (cls, mean), {args.precision}, "
                  f"{args.repeats} repeats", flush=True)
            out["throughput"] = throughput(data, args.n, args.batch_size, args.repeats, args.precision, work)
        if not args.skip_rss:
            print(f"peak RSS: fresh process per N, batch {args.batch_size}, 13 layers x (cls, mean), "
                  f"{args.rss_precision}", flush=True)
            out["memory"] = memory(data, args.rss_n, args.batch_size, args.rss_precision, work)
        if not args.skip_bf16:
            out["bf16"] = bf16_section(args, work)
    return out


if __name__ == "__main__":
    main()
