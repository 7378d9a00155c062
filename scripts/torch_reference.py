#!/usr/bin/env python3
"""Reference values from PyTorch for the CPU ops of `scadles::backend::cpu`.

Writes one JSON file per op family into tests/data/torch_ref/ (conv2d, batchnorm2d, linear,
softmax_cross_entropy, maxpool2d, adaptive_avgpool2d); `tests/torch_reference.rs` reads them.

How to regenerate (needs PyTorch; scripts/setup_torch.sh makes a venv with the pinned version):

    scripts/setup_torch.sh                      # once: creates /opt/scadles-torch (or $SCADLES_TORCH_VENV)
    /opt/scadles-torch/bin/python scripts/torch_reference.py
    cargo test --test torch_reference

Generated with torch 2.15.0 (the version is stored in every JSON file as "torch_version").

Method: inputs, parameters and upstream gradients are drawn in float32 with a fixed seed and stored
as float32 values; the references are computed by torch in float64 from exactly those values, so the
stored outputs are the float64 answers for the float32 inputs (rounded to 10 significant digits).
All arrays are flat, row-major, in NCHW (activations), [out, in, kh, kw] (conv weights) and
[out, in] (linear weights). Gradients are those of sum(y * dy) for the stored dy, except for the
cross-entropy, whose dlogits is the gradient of the mean loss.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

SEED = 20240611
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch_ref")


def f32(*shape, scale=1.0, shift=0.0):
    """Standard-normal float32 tensor, scaled and shifted (still float32)."""
    return (torch.randn(*shape, dtype=torch.float32) * scale + shift).to(torch.float32)


def flat_in(t):
    """Float32 values as Python floats with 9 significant digits (round-trips f32 exactly)."""
    return [float(f"{v:.9g}") for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def flat_out(t):
    """Float64 reference values with 10 significant digits (well below f32 resolution)."""
    return [float(f"{v:.10g}") for v in t.detach().to(torch.float64).reshape(-1).tolist()]


def d(t):
    """Float64 leaf copy of a float32 tensor that records gradients."""
    return t.detach().to(torch.float64).requires_grad_(True)


def conv2d_cases():
    specs = [
        # name, n, c_in, h, w, c_out, k, stride, pad, bias
        ("3x3_s1_p1_bias", 2, 3, 6, 6, 4, 3, 1, 1, True),
        ("7x7_s2_p3_nobias", 2, 3, 11, 11, 4, 7, 2, 3, False),
        ("1x1_s2_p0_nobias", 2, 4, 6, 6, 5, 1, 2, 0, False),
        ("3x3_s2_p1_odd_7x5_bias", 2, 3, 7, 5, 4, 3, 2, 1, True),
        ("3x3_s1_p0_valid_bias", 1, 2, 5, 6, 3, 3, 1, 0, True),
        # Large enough for the multi-threaded im2col/GEMM paths (K = 72, 1024 output pixels).
        ("3x3_s1_p1_bias_medium_4x8x16x16", 4, 8, 16, 16, 16, 3, 1, 1, True),
    ]
    cases = []
    for name, n, c_in, h, w, c_out, k, stride, pad, bias in specs:
        x = f32(n, c_in, h, w)
        wt = f32(c_out, c_in, k, k, scale=(1.0 / (c_in * k * k)) ** 0.5)
        b = f32(c_out, scale=0.5) if bias else None
        xd, wd = d(x), d(wt)
        bd = d(b) if bias else None
        y = F.conv2d(xd, wd, bd, stride=stride, padding=pad)
        dy = f32(*y.shape)
        y.backward(dy.to(torch.float64))
        case = {
            "name": name,
            "shape": {"n": n, "c_in": c_in, "h": h, "w": w, "c_out": c_out, "kh": k, "kw": k,
                      "stride": stride, "pad": pad, "oh": y.shape[2], "ow": y.shape[3]},
            "inputs": {"x": flat_in(x), "w": flat_in(wt), "dy": flat_in(dy)},
            "outputs": {"y": flat_out(y), "dx": flat_out(xd.grad), "dw": flat_out(wd.grad)},
        }
        if bias:
            case["inputs"]["b"] = flat_in(b)
            case["outputs"]["db"] = flat_out(bd.grad)
        cases.append(case)
    return cases


def batchnorm2d_cases(eps=1e-5, momentum=0.1):
    cases = []
    for name, n, c, h, w in [("train_4x3x3x5", 4, 3, 3, 5), ("train_2x5x4x4", 2, 5, 4, 4)]:
        # Per-channel offsets and scales so that the normalisation is not a no-op.
        x = (f32(n, c, h, w) * (1.0 + 2.0 * torch.rand(1, c, 1, 1)) + 3.0 * torch.randn(1, c, 1, 1)).float()
        gamma = f32(c, scale=0.3, shift=1.0)
        beta = f32(c, scale=0.3)
        rm0 = f32(c, scale=0.5)
        rv0 = (torch.rand(c) + 0.5).float()
        dy = f32(n, c, h, w)
        xd, gd, bd = d(x), d(gamma), d(beta)
        rm, rv = rm0.to(torch.float64).clone(), rv0.to(torch.float64).clone()
        y = F.batch_norm(xd, rm, rv, gd, bd, training=True, momentum=momentum, eps=eps)
        y.backward(dy.to(torch.float64))
        x64 = x.to(torch.float64)
        mean = x64.mean(dim=(0, 2, 3))
        var_biased = x64.var(dim=(0, 2, 3), unbiased=False)
        cases.append({
            "name": name,
            "mode": "train",
            "shape": {"n": n, "c": c, "h": h, "w": w},
            "eps": eps,
            "momentum": momentum,
            "inputs": {"x": flat_in(x), "gamma": flat_in(gamma), "beta": flat_in(beta),
                       "running_mean": flat_in(rm0), "running_var": flat_in(rv0), "dy": flat_in(dy)},
            "outputs": {"y": flat_out(y), "dx": flat_out(xd.grad), "dgamma": flat_out(gd.grad),
                        "dbeta": flat_out(bd.grad), "running_mean": flat_out(rm), "running_var": flat_out(rv),
                        "save_mean": flat_out(mean), "save_invstd": flat_out(1.0 / torch.sqrt(var_biased + eps))},
        })
    # Eval mode: normalise with the running statistics, which are left untouched.
    n, c, h, w = 3, 4, 3, 3
    x = f32(n, c, h, w, scale=2.0, shift=0.5)
    gamma = f32(c, scale=0.3, shift=1.0)
    beta = f32(c, scale=0.3)
    rm0 = f32(c, scale=0.5)
    rv0 = (torch.rand(c) * 2.0 + 0.25).float()
    y = F.batch_norm(x.double(), rm0.double(), rv0.double(), gamma.double(), beta.double(),
                     training=False, momentum=momentum, eps=eps)
    cases.append({
        "name": "eval_3x4x3x3",
        "mode": "eval",
        "shape": {"n": n, "c": c, "h": h, "w": w},
        "eps": eps,
        "momentum": momentum,
        "inputs": {"x": flat_in(x), "gamma": flat_in(gamma), "beta": flat_in(beta),
                   "running_mean": flat_in(rm0), "running_var": flat_in(rv0)},
        "outputs": {"y": flat_out(y)},
    })
    return cases


def linear_cases():
    cases = []
    for name, n, in_f, out_f in [("5x7_to_4_bias", 5, 7, 4), ("3x33_to_10_bias", 3, 33, 10)]:
        x = f32(n, in_f)
        wt = f32(out_f, in_f, scale=(1.0 / in_f) ** 0.5)
        b = f32(out_f, scale=0.5)
        xd, wd, bd = d(x), d(wt), d(b)
        y = F.linear(xd, wd, bd)
        dy = f32(n, out_f)
        y.backward(dy.to(torch.float64))
        cases.append({
            "name": name,
            "shape": {"n": n, "in_f": in_f, "out_f": out_f},
            "inputs": {"x": flat_in(x), "w": flat_in(wt), "b": flat_in(b), "dy": flat_in(dy)},
            "outputs": {"y": flat_out(y), "dx": flat_out(xd.grad), "dw": flat_out(wd.grad), "db": flat_out(bd.grad)},
        })
    return cases


def softmax_cross_entropy_cases():
    cases = []
    for name, n, classes, scale in [("6x10", 6, 10, 1.0), ("4x7_large_logits", 4, 7, 40.0), ("1x3", 1, 3, 2.0)]:
        logits = f32(n, classes, scale=scale)
        labels = torch.randint(0, classes, (n,))
        ld = d(logits)
        loss = F.cross_entropy(ld, labels, reduction="mean")
        loss.backward()
        cases.append({
            "name": name,
            "shape": {"n": n, "classes": classes},
            "inputs": {"logits": flat_in(logits), "labels": labels.tolist()},
            "outputs": {"loss": float(f"{loss.item():.12g}"), "dlogits": flat_out(ld.grad)},
        })
    return cases


def maxpool2d_cases():
    cases = []
    specs = [
        # name, n, c, h, w, k, stride, pad, shift (all-negative input checks that padding is -inf)
        ("3x3_s2_p1_8x8", 2, 3, 8, 8, 3, 2, 1, 0.0),
        ("3x3_s2_p1_odd_9x7", 1, 2, 9, 7, 3, 2, 1, 0.0),
        ("3x3_s2_p1_all_negative", 1, 2, 5, 5, 3, 2, 1, -10.0),
        ("2x2_s2_p0_vgg", 2, 2, 6, 6, 2, 2, 0, 0.0),
    ]
    for name, n, c, h, w, k, stride, pad, shift in specs:
        x = f32(n, c, h, w, shift=shift)
        xd = d(x)
        y = F.max_pool2d(xd, k, stride, pad)
        dy = f32(*y.shape)
        y.backward(dy.to(torch.float64))
        cases.append({
            "name": name,
            "shape": {"n": n, "c": c, "h": h, "w": w, "k": k, "stride": stride, "pad": pad,
                      "oh": y.shape[2], "ow": y.shape[3]},
            "inputs": {"x": flat_in(x), "dy": flat_in(dy)},
            "outputs": {"y": flat_out(y), "dx": flat_out(xd.grad)},
        })
    return cases


def adaptive_avgpool2d_cases():
    cases = []
    specs = [
        # name, n, c, h, w, oh, ow
        ("3x3_to_2x2", 2, 3, 3, 3, 2, 2),
        ("1x1_to_7x7", 2, 3, 1, 1, 7, 7),
        ("4x4_to_1x1", 2, 3, 4, 4, 1, 1),
        ("5x7_to_3x2", 1, 2, 5, 7, 3, 2),
    ]
    for name, n, c, h, w, oh, ow in specs:
        x = f32(n, c, h, w)
        xd = d(x)
        y = F.adaptive_avg_pool2d(xd, (oh, ow))
        dy = f32(*y.shape)
        y.backward(dy.to(torch.float64))
        cases.append({
            "name": name,
            "shape": {"n": n, "c": c, "h": h, "w": w, "oh": oh, "ow": ow},
            "inputs": {"x": flat_in(x), "dy": flat_in(dy)},
            "outputs": {"y": flat_out(y), "dx": flat_out(xd.grad)},
        })
    return cases


def main():
    torch.manual_seed(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    ops = [
        ("conv2d", conv2d_cases),
        ("batchnorm2d", batchnorm2d_cases),
        ("linear", linear_cases),
        ("softmax_cross_entropy", softmax_cross_entropy_cases),
        ("maxpool2d", maxpool2d_cases),
        ("adaptive_avgpool2d", adaptive_avgpool2d_cases),
    ]
    total = 0
    for op, make in ops:
        doc = {
            "op": op,
            "torch_version": torch.__version__,
            "generator": "scripts/torch_reference.py",
            "seed": SEED,
            "cases": make(),
        }
        path = os.path.join(OUT_DIR, f"{op}.json")
        with open(path, "w") as fh:
            json.dump(doc, fh, separators=(",", ":"))
            fh.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{os.path.relpath(path)}: {len(doc['cases'])} cases, {size} bytes", file=sys.stderr)
    print(f"total {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
