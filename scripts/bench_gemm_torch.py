#!/usr/bin/env python3
"""The GEMM ceiling for `scadles bench gemm --device cuda`: torch.mm (cuBLAS) on the same GPU, same
sizes, FP32 with TF32 off (precision=fp32) and with TF32 on (precision=tf32).

C = A·B with A [m, k], B [k, n] N(0,1) float32 on GPU 0, written into a preallocated C
(torch.mm(a, b, out=c)). TF32 is switched with torch.backends.cuda.matmul.allow_tf32 (printed on
every row). Timing as in scadles: one untimed call, one call that sizes the loop (enough
back-to-back calls for about 50 ms, 1 to 1000), then --reps timings of that loop between
torch.cuda.synchronize() calls; the median seconds per call is reported. Prints rows
  gemm impl=torch device=cuda precision=tf32 m=4096 n=4096 k=4096 reps=5 iters=N median_s=S tflop_s=T allow_tf32=True
which scripts/gpu_ratios.py joins with scadles' on (precision, m, n, k).

Usage: bench_gemm_torch.py [--device cuda] [--sizes 1024,2048,4096,8192,256x4096x2304]
                           [--precision fp32,tf32] [--reps 5]
(--device cpu runs the same code on the CPU, where allow_tf32 has no effect: for checking the script.)
"""
import argparse
import math
import statistics
import sys
import time

import torch


def parse_size(s):
    """N -> (N, N, N); MxNxK -> (M, N, K)."""
    try:
        dims = [int(d) for d in s.split("x")]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims *= 3
    if len(dims) != 3 or min(dims) < 1:
        sys.exit(f"bench_gemm_torch.py: {s!r} is not a GEMM size: expected N or MxNxK with positive integers")
    return tuple(dims)


def iters_for(one_call_s):
    """Calls per timing for about 50 ms (scadles' iters_for)."""
    if one_call_s > 0 and math.isfinite(one_call_s):
        return min(max(math.ceil(0.05 / one_call_s), 1), 1000)
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    ap.add_argument("--sizes", default="1024,2048,4096,8192,256x4096x2304")
    ap.add_argument("--precision", default="fp32,tf32", help="comma-separated: fp32, tf32")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    sizes = [parse_size(s.strip()) for s in args.sizes.split(",") if s.strip()]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not sizes or not precisions or any(p not in ("fp32", "tf32") for p in precisions) or args.reps < 1:
        sys.exit("bench_gemm_torch.py: --sizes and --precision (fp32, tf32) must be non-empty, --reps at least 1")
    reps = args.reps
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_gemm_torch.py: --device cuda: no usable NVIDIA GPU (torch.cuda.is_available() is False)")
        dev = torch.device("cuda")
        sync = torch.cuda.synchronize
        cap = torch.cuda.get_device_capability(0)
        where = f"{torch.cuda.get_device_name(0)} (sm_{cap[0]}{cap[1]}), CUDA {torch.version.cuda}"
    else:
        dev = torch.device("cpu")
        where = f"CPU, {torch.get_num_threads()} threads"

        def sync():
            pass

    print(f"# torch {torch.__version__} torch.mm on {where}: C = A·B, N(0,1) float32, "
          f"fp32 = allow_tf32 False, tf32 = allow_tf32 True; median of {reps} synchronised timings", flush=True)
    gen = torch.Generator(device=dev).manual_seed(1)
    for (m, n, k) in sizes:
        a = torch.randn(m, k, generator=gen, device=dev)
        b = torch.randn(k, n, generator=gen, device=dev)
        c = torch.empty(m, n, device=dev)

        def timed(iters):
            sync()
            t = time.perf_counter()
            for _ in range(iters):
                torch.mm(a, b, out=c)
            sync()
            return (time.perf_counter() - t) / iters

        for p in precisions:
            torch.backends.cuda.matmul.allow_tf32 = p == "tf32"
            timed(1)  # untimed: cuBLAS handle and heuristics
            iters = iters_for(timed(1))
            med = statistics.median(timed(iters) for _ in range(reps))
            print(f"gemm impl=torch device={args.device} precision={p} m={m} n={n} k={k} reps={reps} iters={iters} "
                  f"median_s={med:.6f} tflop_s={2.0 * m * n * k / med / 1e12:.3f} "
                  f"allow_tf32={torch.backends.cuda.matmul.allow_tf32}", flush=True)
        del a, b, c
    torch.backends.cuda.matmul.allow_tf32 = False


if __name__ == "__main__":
    main()
