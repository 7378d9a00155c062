#!/usr/bin/env python3
"""Ratio tables of scadles against PyTorch on the same GPU, from the two benchmarks' outputs.

  gpu_ratios.py step SCADLES.txt TORCH.txt   # `scadles bench step --device cuda` vs bench_torch.py --device cuda
  gpu_ratios.py topk SCADLES.txt TORCH.txt   # `scadles bench topk --device cuda` vs bench_topk_torch.py --device cuda
  gpu_ratios.py gemm SCADLES.txt TORCH.txt   # `scadles bench gemm --device cuda` vs bench_gemm_torch.py --device cuda

Reads the `key=value` lines each side prints (`bench model=...`, `topk impl=...`, `gemm impl=...`;
other lines are ignored), joins them on (model, shape, batch), (n, cr, k) and (precision, m, n, k)
and prints one row per key with both values and the ratio scadles / PyTorch (for top-k: the
speedup, torch seconds / scadles seconds; for GEMM: our TFLOP/s over cuBLAS's at the same
precision). Standard library only. Exits 1 when a row has no peer on the other side (a benchmark
failed or PyTorch was not run), 0 otherwise.
"""
import math
import re
import sys

PREFIX = {"step": "bench", "topk": "topk", "gemm": "gemm"}


def rows(path, prefix):
    """The `prefix key=value ...` lines of `path` as dicts, in file order."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if not parts or parts[0] != prefix:
                    continue
                kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
                out.append(kv)
    except OSError:
        pass  # reported once by main
    return out


def header_tf32(path):
    """'on'/'off' from scadles' `# training step on ... TF32 on)` header, or None."""
    try:
        with open(path) as f:
            for line in f:
                m = re.search(r"TF32 (on|off)\b", line)
                if line.startswith("#") and m:
                    return m.group(1)
    except OSError:
        pass
    return None


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def geomean(vs):
    vs = [v for v in vs if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in vs) / len(vs)) if vs else None


def join(ours, theirs, key):
    """[(key, our row or None, their row or None)] in first-seen order (ours first)."""
    order, a, b = [], {}, {}
    for side, table in ((ours, a), (theirs, b)):
        for r in side:
            k = key(r)
            if k is None:
                continue
            if k not in a and k not in b:
                order.append(k)
            table[k] = r
    return [(k, a.get(k), b.get(k)) for k in order]


def table(header, body, fmts):
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if f == "<" else c.rjust(w) for c, w, f in zip(cells, widths, fmts))
    print(line(header))
    for r in body:
        print(line(r))


def step(ours_path, theirs_path):
    key = lambda r: (r["model"], r["shape"], int(r["batch"])) if {"model", "shape", "batch"} <= r.keys() else None
    joined = join(rows(ours_path, "bench"), rows(theirs_path, "bench"), key)
    body, ratios, missing = [], [], 0
    for (model, shape, batch), a, b in joined:
        sv = num(a.get("img_per_s")) if a else None
        tv = num(b.get("img_per_s")) if b else None
        r = ratio(sv, tv)
        ratios.append(r)
        missing += r is None
        body.append([model, shape, str(batch), fmt(sv, ".1f"), fmt(tv, ".1f"), fmt(r, ".2f"),
                     "yes" if r is not None and r >= 1.0 else ("no" if r is not None else "-")])
    print("Training step (forward + backward + SGD) on the GPU, images/s: scadles vs PyTorch eager, same GPU")
    table(["model", "shape", "batch", "scadles img/s", "torch img/s", "ratio", ">= 1.0"], body,
          ["<", "<", ">", ">", ">", ">", ">"])
    ok = [r for r in ratios if r is not None]
    print(f"geometric mean ratio {fmt(geomean(ok), '.2f')} over {len(ok)} rows; "
          f"{sum(r >= 1.0 for r in ok)} of {len(ok)} at or above 1.0 (goal: all)")
    ours_tf32 = header_tf32(ours_path)
    theirs_tf32 = {r.get("tf32") for r in rows(theirs_path, "bench")} - {None}
    if ours_tf32 and theirs_tf32 and theirs_tf32 != {ours_tf32}:
        print(f"WARNING: TF32 differs: scadles {ours_tf32}, PyTorch {', '.join(sorted(theirs_tf32))}")
        missing += 1
    return missing


def topk(ours_path, theirs_path):
    def key(r):
        try:
            return int(r["n"]), float(r["cr"]), int(r["k"])
        except (KeyError, ValueError):
            return None

    joined = join(rows(ours_path, "topk"), rows(theirs_path, "topk"), key)
    body, missing = [], 0
    for (n, cr, k), a, b in joined:
        sv = num(a.get("median_s")) if a else None
        tv = num(b.get("median_s")) if b else None
        r = ratio(tv, sv)
        missing += r is None
        body.append([str(n), f"{cr:g}", str(k), fmt(sv and sv * 1e3, ".3f"), fmt(tv and tv * 1e3, ".3f"),
                     fmt(num(a.get("elems_per_s")) if a else None, ".3e"),
                     fmt(num(b.get("elems_per_s")) if b else None, ".3e"), fmt(r, ".2f")])
    print("Top-k on the GPU (median ms per call): scadles CudaBackend::topk vs torch.topk(x.abs(), k) + gather")
    table(["n", "cr", "k", "scadles ms", "torch ms", "scadles elem/s", "torch elem/s", "speedup"], body,
          [">", ">", ">", ">", ">", ">", ">", ">"])
    print("speedup = torch seconds / scadles seconds (> 1: scadles faster)")
    return missing


def gemm(ours_path, theirs_path):
    def key(r):
        try:
            return r["precision"], int(r["m"]), int(r["n"]), int(r["k"])
        except (KeyError, ValueError):
            return None

    ours, theirs = rows(ours_path, "gemm"), rows(theirs_path, "gemm")
    joined = join(ours, theirs, key)
    body, missing = [], 0
    for (p, m, n, k), a, b in joined:
        sv = num(a.get("tflop_s")) if a else None
        tv = num(b.get("tflop_s")) if b else None
        r = ratio(sv, tv)
        missing += r is None
        body.append([f"{m}x{n}x{k}", p, fmt(sv, ".2f"), fmt(tv, ".2f"), fmt(r, ".2f"),
                     a.get("max_err", "-") if a else "-"])
    print("GEMM on the GPU, TFLOP/s (2mnk / s): scadles CudaBackend::gemm vs cuBLAS (torch.mm), same precision")
    table(["m x n x k", "precision", "scadles TFLOP/s", "cuBLAS TFLOP/s", "ratio", "scadles max_err"], body,
          ["<", "<", ">", ">", ">", ">"])
    for p in ("fp32", "tf32"):
        best_ours = max((num(r.get("tflop_s")) or 0 for r in ours if r.get("precision") == p), default=None)
        best_ceiling = max((num(r.get("tflop_s")) or 0 for r in theirs if r.get("precision") == p), default=None)
        if best_ours is not None or best_ceiling is not None:
            print(f"{p}: best scadles {fmt(best_ours, '.2f')} TFLOP/s, measured ceiling (best cuBLAS) "
                  f"{fmt(best_ceiling, '.2f')} TFLOP/s, {fmt(ratio(best_ours, best_ceiling) and 100 * ratio(best_ours, best_ceiling), '.0f')}% of it")
    print("fp32: gemm_simt vs cuBLAS with TF32 off; tf32: gemm_tf32 (tensor cores) vs cuBLAS with TF32 on")
    return missing


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in PREFIX:
        sys.exit("usage: gpu_ratios.py step|topk|gemm SCADLES_OUTPUT TORCH_OUTPUT")
    kind, ours, theirs = sys.argv[1:]
    for path in (ours, theirs):
        try:
            open(path).close()
        except OSError as e:
            print(f"gpu_ratios.py: cannot read {path}: {e.strerror}", file=sys.stderr)
    if not rows(ours, PREFIX[kind]) and not rows(theirs, PREFIX[kind]):
        sys.exit(f"gpu_ratios.py: no `{PREFIX[kind]} ...` rows in the scadles or the PyTorch output")
    missing = {"step": step, "topk": topk, "gemm": gemm}[kind](ours, theirs)
    if missing:
        print(f"gpu_ratios.py: {missing} row(s) without a ratio (a side missing or failed)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
