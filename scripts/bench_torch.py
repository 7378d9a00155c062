#!/usr/bin/env python3
"""PyTorch peer of `scadles bench step`: images per second of one SGD training step (CPU or GPU).

One step = zero_grad + forward + cross-entropy (mean) + backward + SGD(lr 0.1, momentum 0.9,
weight decay 1e-4) step, model.train(), on a random 32x32 batch. Models:

  resnet18-cifar  torchvision resnet18 with conv1 = 3x3 stride 1 pad 1 (no bias), maxpool = Identity,
                  10 classes (11,173,962 parameters)
  resnet152       torchvision shape, 1000 classes (60,192,808 parameters)
  vgg19_bn        torchvision shape, 1000 classes (143,678,248 parameters)

torchvision is used when installed; otherwise the same architectures are built here in plain torch
(the parameter counts above are asserted either way). Prints one line per model, e.g.

  bench model=resnet18 shape=cifar batch=64 threads=2 img_per_s=42.7 step_s=1.499

(`shape=torchvision` for the other two), the keys `scadles bench` prints, so that
scripts/bench_cpu.sh can join the two. Usage:

  /opt/scadles-torch/bin/python scripts/bench_torch.py [--models resnet18-cifar,resnet152,vgg19_bn]
      [--batch 64 | --batches 8,32,64] [--threads 2] [--warmup 2] [--steps 5] [--device cpu|cuda]
      [--tf32 on|off]

--device cuda (the peer of `scadles bench step --device cuda`, joined by scripts/gpu_ratios.py):
model and data on GPU 0, eager mode, torch.backends.cudnn.benchmark left at PyTorch's default
(False) and printed; TF32 set by --tf32 (default on, as scadles uses TF32 tensor cores on sm_80+
unless SCADLES_CUDA_TF32=0) through torch.backends.cuda.matmul.allow_tf32 and
torch.backends.cudnn.allow_tf32, both printed. Each timed step is bracketed by
torch.cuda.synchronize() and the median step is reported, as scadles does; lines end in
` device=cuda tf32=on|off`. The CPU output (the default) is unchanged: mean of the timed loop.

Unset OPENBLAS_CORETYPE before timing (torch uses MKL, but numpy/OpenBLAS-backed pieces are slowed
by it). Time on an otherwise idle machine: torch's OpenMP threads spin at their barriers, so when
other processes hold the cores a 2-thread step can be several times slower than a 1-thread one
(OMP_WAIT_POLICY=PASSIVE removes most of that loss, but is not torch's default).
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

PARAM_COUNTS = {"resnet18-cifar": 11_173_962, "resnet152": 60_192_808, "vgg19_bn": 143_678_248}


# ---- plain-torch versions of torchvision's ResNet (v1.5: stride on the 3x3 conv) and VGG-BN ----

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, planes * 4, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


def _downsample(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes, cifar_stem):
        super().__init__()
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        cin, stages = 64, []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            mods = []
            for j in range(blocks):
                mods.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*mods))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class VGGBN(nn.Module):
    def __init__(self, cfg, num_classes):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(name, use_torchvision):
    """Returns (model, shape label, num_classes)."""
    name = name.removesuffix("-torchvision")  # `scadles bench step` accepts the explicit suffix too
    if use_torchvision:
        from torchvision import models as tvm
        if name == "resnet18-cifar":
            m = tvm.resnet18(num_classes=10)
            m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            m.maxpool = nn.Identity()
            return m, "cifar", 10
        if name == "resnet152":
            return tvm.resnet152(num_classes=1000), "torchvision", 1000
        if name == "vgg19_bn":
            return tvm.vgg19_bn(num_classes=1000), "torchvision", 1000
    else:
        if name == "resnet18-cifar":
            return ResNet(BasicBlock, [2, 2, 2, 2], 10, cifar_stem=True), "cifar", 10
        if name == "resnet152":
            return ResNet(Bottleneck, [3, 8, 36, 3], 1000, cifar_stem=False), "torchvision", 1000
        if name == "vgg19_bn":
            return VGGBN(VGG19_CFG, 1000), "torchvision", 1000
    sys.exit(f"bench_torch.py: unknown model {name!r}; expected one of {', '.join(PARAM_COUNTS)}")


def prepare(name, use_torchvision, dev):
    """The model (its parameter count checked against scadles') in training mode on `dev`, with
    SGD (momentum 0.9, weight decay 1e-4) and the loss; returns (name, shape, classes, step_for)
    where step_for(x, y) gives one training step (forward, loss, backward, SGD) on that batch."""
    model, shape, classes = build(name, use_torchvision)
    name = name.removesuffix("-torchvision")
    nparams = sum(p.numel() for p in model.parameters())
    assert nparams == PARAM_COUNTS[name], f"{name}: {nparams} parameters, expected {PARAM_COUNTS[name]}"
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step_for(x, y):
        def step():
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        return step

    return name, shape, classes, step_for


def bench(name, batch, threads, warmup, steps, use_torchvision):
    name, shape, classes, step_for = prepare(name, use_torchvision, torch.device("cpu"))
    step = step_for(torch.randn(batch, 3, 32, 32), torch.randint(0, classes, (batch,)))

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    elapsed = time.perf_counter() - t0
    if not torch.isfinite(loss):
        sys.exit(f"bench_torch.py: {name} loss is {loss.item()} after {warmup + steps} steps")
    step_s = elapsed / steps
    print(f"bench model={name.removesuffix('-cifar')} shape={shape} batch={batch} threads={threads} "
          f"img_per_s={batch / step_s:.1f} step_s={step_s:.3f}", flush=True)


def bench_cuda(name, batches, threads, warmup, steps, use_torchvision, tf32):
    """--device cuda: one model on GPU 0 at each batch size; the median of `steps` synchronised
    steps after `warmup` untimed ones."""
    dev = torch.device("cuda")
    name, shape, classes, step_for = prepare(name, use_torchvision, dev)
    for batch in batches:
        step = step_for(torch.randn(batch, 3, 32, 32, device=dev), torch.randint(0, classes, (batch,), device=dev))
        times = []
        for i in range(warmup + steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = step()
            torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            sys.exit(f"bench_torch.py: {name} loss is {loss.item()} after {warmup + steps} steps at batch {batch}")
        step_s = statistics.median(times)
        print(f"bench model={name.removesuffix('-cifar')} shape={shape} batch={batch} threads={threads} "
              f"img_per_s={batch / step_s:.1f} step_s={step_s:.4f} device=cuda tf32={'on' if tf32 else 'off'}",
              flush=True)
    del step, step_for
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18-cifar,resnet152,vgg19_bn",
                    help="comma-separated: resnet18-cifar, resnet152, vgg19_bn")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", default=None,
                    help="comma-separated batch sizes (one line per model and batch); replaces --batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--tf32", choices=("on", "off"), default="on",
                    help="--device cuda: TF32 for matmuls and convolutions (default on, like scadles)")
    ap.add_argument("--no-torchvision", action="store_true", help="use the plain-torch model definitions")
    args = ap.parse_args()
    if args.batch < 1 or args.threads < 1 or args.steps < 1 or args.warmup < 0:
        sys.exit("bench_torch.py: --batch, --threads and --steps must be at least 1, --warmup at least 0")
    batches = [args.batch]
    if args.batches is not None:
        try:
            batches = [int(b) for b in args.batches.split(",") if b.strip()]
        except ValueError:
            batches = []
        if not batches or min(batches) < 1:
            sys.exit(f"bench_torch.py: --batches {args.batches!r}: expected comma-separated positive integers")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_torch.py: --device cuda: no usable NVIDIA GPU (torch.cuda.is_available() is False)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    use_tv = not args.no_torchvision
    if use_tv:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            use_tv = False
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.device == "cuda":
        tf32 = args.tf32 == "on"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        cap = torch.cuda.get_device_capability(0)
        print(f"# torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
              f"torchvision {'yes' if use_tv else 'no (plain-torch models)'}, "
              f"device {torch.cuda.get_device_name(0)} (sm_{cap[0]}{cap[1]}), eager, "
              f"cudnn.benchmark {torch.backends.cudnn.benchmark}, "
              f"cuda.matmul.allow_tf32 {torch.backends.cuda.matmul.allow_tf32}, "
              f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, "
              f"warm-up {args.warmup}, median of {args.steps} synchronised steps", flush=True)
        for name in models:
            bench_cuda(name, batches, args.threads, args.warmup, args.steps, use_tv, tf32)
        return
    print(f"# torch {torch.__version__}, torchvision {'yes' if use_tv else 'no (plain-torch models)'}, "
          f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    for name in models:
        for batch in batches:
            bench(name, batch, args.threads, args.warmup, args.steps, use_tv)


if __name__ == "__main__":
    main()
