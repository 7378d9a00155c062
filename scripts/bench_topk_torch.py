#!/usr/bin/env python3
"""Reference timing for `scadles bench topk`: torch.topk(x.abs(), k, sorted=False) plus the gather
of the signed values, on an N(0,1) float32 buffer, with torch.set_num_threads(2) on the CPU, or on
GPU 0 with --device cuda (buffer on the device, each call bracketed by torch.cuda.synchronize()).

Prints one row per compression ratio in the format of scadles' TopkBenchRow:
  topk impl=torch n=<n> cr=<cr> k=<k> reps=<r> median_s=<s> elems_per_s=<e> device=<cpu|cuda>
k follows scadles' k_for: max(1, floor(n*cr)), capped at n. The median is over --reps calls after
one untimed warm-up call, as in the Rust bench.

Usage: bench_topk_torch.py [--n 60192808] [--crs 0.1,0.01] [--reps 5] [--threads 2] [--device cpu|cuda]
"""
import argparse
import math
import statistics
import sys
import time

import torch


def k_for(n: int, cr: float) -> int:
    if n == 0:
        return 0
    v = n * cr
    if math.isnan(v) or v <= 0:
        k = 0
    elif math.isinf(v):
        k = n
    else:
        k = math.floor(v)
    return min(max(1, k), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_192_808)
    ap.add_argument("--crs", default="0.1,0.01")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_topk_torch.py: --device cuda: no usable NVIDIA GPU (torch.cuda.is_available() is False)")
        dev = torch.device("cuda")
        sync = torch.cuda.synchronize
        print(f"# torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}: "
              f"torch.topk(x.abs(), k, sorted=False) + gather, median of {max(1, args.reps)} synchronised calls",
              flush=True)
    else:
        dev = torch.device("cpu")

        def sync():
            pass

    gen = torch.Generator(device=dev).manual_seed(42)
    x = torch.randn(args.n, generator=gen, dtype=torch.float32, device=dev)
    for cr in (float(c) for c in args.crs.split(",")):
        k = k_for(args.n, cr)

        def once():
            _, idx = torch.topk(x.abs(), k, sorted=False)
            return idx, x.gather(0, idx)

        once()  # untimed warm-up, as in the Rust bench
        times = []
        for _ in range(max(1, args.reps)):
            sync()
            t = time.perf_counter()
            once()
            sync()
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"topk impl=torch n={args.n} cr={cr} k={k} reps={max(1, args.reps)} "
              f"median_s={med:.6f} elems_per_s={args.n / med:.4e} device={args.device}", flush=True)


if __name__ == "__main__":
    main()
