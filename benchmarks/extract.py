"""Benchmark `medinterp.extract.extract` on a model with BiomedCLIP's vision architecture (timm vit_base_patch16_224,
random init, 224 px phantoms): all 13 layers (pre_trunk + 12 blocks), CLS + mean, written to disk.

1. Throughput: extraction (decode + preprocess + forward + hooks + writes) against a bare forward pass of the same
   model on the same, already preprocessed batches, in images/s and as a ratio (goal >= 0.90). Runs alternate and
   the medians are reported; the extraction time includes everything `extract` does (probe pass, setup, index).
2. Memory: peak RSS of a fresh process extracting N=256 and N=1,024 images (goal: flat), each N in its own
   subprocess, with the RSS right after loading the model for reference.

ViT-B/16 runs at about 5 images/s in float32 on two idle laptop cores, so the default run takes about 7 minutes
(most of it the N=1,024 memory run). bfloat16 autocast is faster only on CPUs with native bf16 (AVX512-BF16/AMX);
on plain AVX2 it is several times slower.

    python benchmarks/extract.py                               # --n 64 --batch-size 16 --repeats 3, RSS at 256 and 1024
    python benchmarks/extract.py --skip-rss --n 96             # throughput only
    python benchmarks/extract.py --rss-n 128 512 --skip-throughput
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="images per throughput run (default 64)")
    ap.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs; medians are reported (default 3)")
    ap.add_argument("--precision", default="float32", help="forward precision of the throughput runs (default float32)")
    ap.add_argument("--rss-n", type=int, nargs="+", default=[256, 1024], help="N of the peak-RSS runs (default 256 1024)")
    ap.add_argument("--rss-precision", default="float32", help="forward precision of the RSS runs (default float32)")
    ap.add_argument("--skip-rss", action="store_true", help="throughput only")
    ap.add_argument("--skip-throughput", action="store_true", help="memory only")
    ap.add_argument("--_rss-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._rss_child is not None:
        return rss_child(Path(args.data), args._rss_child, args.batch_size, args.rss_precision, Path(args.out))

    import torch
    with tempfile.TemporaryDirectory(prefix="medinterp-bench-") as tmp:
        work = Path(tmp)
        n_data = max([args.n] + ([] if args.skip_rss else args.rss_n))
        t0 = time.perf_counter()
        phantom_folder(work, n_data)
        data = work / "phantoms"
        print(f"{n_data} phantoms at 224 px in {time.perf_counter() - t0:.0f} s; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
        if not args.skip_throughput:
            print(f"throughput: N={args.n}, batch {args.batch_size}, 13 layers x (cls, mean), {args.precision}, "
                  f"{args.repeats} repeats", flush=True)
            throughput(data, args.n, args.batch_size, args.repeats, args.precision, work)
        if not args.skip_rss:
            print(f"peak RSS: fresh process per N, batch {args.batch_size}, 13 layers x (cls, mean), "
                  f"{args.rss_precision}", flush=True)
            memory(data, args.rss_n, args.batch_size, args.rss_precision, work)


if __name__ == "__main__":
    main()
