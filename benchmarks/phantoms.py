"""Time `medinterp.phantoms.make_phantoms` in memory against the goal of 2,500 phantoms at 224 px in under a minute.

    python benchmarks/phantoms.py                      # --n 2500 --size 224 --repeats 3, workers: auto
    python benchmarks/phantoms.py --workers 1          # single process
"""
import argparse
import os
import statistics
import time

GOAL_SECONDS = 60.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2500, help="phantoms per run (default 2500)")
    ap.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default 3)")
    ap.add_argument("--workers", type=int, default=None, help="render processes (default: make_phantoms decides)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from medinterp.phantoms import _n_workers, make_phantoms
    workers = _n_workers(args.workers, args.n)
    print(f"make_phantoms(n={args.n}, size={args.size}) in memory, workers={workers}, cpus={os.cpu_count()}")
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        ps = make_phantoms(args.n, size=args.size, seed=args.seed, workers=args.workers, progress=False)
        times.append(time.perf_counter() - t0)
        assert ps.images.shape == (args.n, args.size, args.size)
        print(f"  run {r + 1}: {times[-1]:.2f} s  ({args.n / times[-1]:.1f} images/s)")
    med = statistics.median(times)
    goal = GOAL_SECONDS * args.n / 2500 * (args.size / 224) ** 2
    print(f"median {med:.2f} s, {args.n / med:.1f} images/s, "
          f"{med / goal:.2f} x the goal of {goal:.0f} s ({'met' if med <= goal else 'MISSED'})")
    return med


if __name__ == "__main__":
    main()
