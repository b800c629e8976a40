"""Time one DARTS search step (architecture step + weight step), autonas vs the textbook.

The reference below is the textbook implementation, written here without optimisations:
channels-first tensors, every op of every edge computed (``none`` included) and summed as
``sum(w * op(x))``, PyTorch's dilated convolutions, and a deep-copied network for the
second-order unrolled step. Its parameter names mirror autonas' supernet, so both load the
same weights and their gradients are compared on the same batch.

Each implementation is timed in its own process (so peak RSS is its own); the parent
prints one JSON document.

    python benchmarks/step.py       # C=8, 5 cells, batch 64, 28x28x1, orders 1 and 2
    python benchmarks/step.py --channels 16 --layers 8 --grad-batch 16   # float64 fits in 24 GB
    python benchmarks/step.py --strategy pc-darts   # or gdas: autonas only, no reference
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from autonas.spaces.darts import CELL_TYPES, DartsSpace, reduction_layers
from autonas.spaces.genotype import edge_inputs
from autonas.spaces.ops import DARTS_OPS
from autonas.strategies import make_strategy

# ----------------------------------------------------------------------------- reference


class RefZero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x.mul(0.0) if self.stride == 1 else x[:, :, :: self.stride, :: self.stride].mul(0.0)


class RefFactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def ref_sep(c: int, k: int, stride: int, dilation: int) -> list[nn.Module]:
    return [nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride, dilation * (k - 1) // 2, dilation=dilation, groups=c,
                      bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False)]


def ref_op(name: str, c: int, stride: int) -> nn.Module:
    if name == "none":
        return RefZero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False),
                             nn.BatchNorm2d(c, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else RefFactorizedReduce(c, c)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return nn.Sequential(*ref_sep(c, k, stride, 1), *ref_sep(c, k, 1, 1))
    if name.startswith("dil_conv"):
        return nn.Sequential(*ref_sep(c, k, stride, 2))
    raise KeyError(name)


class RefMixedOp(nn.Module):
    def __init__(self, ops: list[str], c: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({str(k): ref_op(name, c, stride) for k, name in enumerate(ops)})

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.ops.values(), strict=True))


def ref_relu_conv_bn(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


class RefCell(nn.Module):
    def __init__(self, ops, nodes, c_pp, c_p, c, reduction, reduction_prev) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0 = (RefFactorizedReduce(c_pp, c) if reduction_prev
                            else ref_relu_conv_bn(c_pp, c))
        self.preprocess1 = ref_relu_conv_bn(c_p, c)
        self.edges = nn.ModuleList(RefMixedOp(ops, c, 2 if reduction and j < 2 else 1)
                                   for _, j in edge_inputs(nodes))

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            s = sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[2:], dim=1)


class RefSupernet(nn.Module):
    def __init__(self, ops, in_channels, n_classes, channels, layers, nodes, stem_mult=3) -> None:
        super().__init__()
        c_stem = stem_mult * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            self.cells.append(RefCell(ops, nodes, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def forward(self, x, weights):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))


class RefDarts:
    """The textbook DARTS step (first order, or second order with a deep-copied network)."""

    def __init__(self, net, alphas, w_optim, a_optim, order, momentum, wd, clip) -> None:
        self.net, self.alphas, self.w_optim, self.a_optim = net, alphas, w_optim, a_optim
        self.order, self.momentum, self.wd, self.clip = order, momentum, wd, clip

    def weights(self):
        return {t: F.softmax(a, dim=-1) for t, a in self.alphas.items()}

    def loss(self, net, x, y):
        return F.cross_entropy(net(x, self.weights()), y)

    def arch_grads(self, xt, yt, xv, yv):
        alphas = list(self.alphas.values())
        for a in alphas:
            a.grad = None
        if self.order == 1:
            self.loss(self.net, xv, yv).backward()
            return [a.grad.clone() for a in alphas]
        eta = self.w_optim.param_groups[0]["lr"]
        params = list(self.net.parameters())
        loss = self.loss(self.net, xt, yt)
        grads = torch.autograd.grad(loss, params)
        unrolled = copy.deepcopy(self.net)
        with torch.no_grad():
            for p, q, g in zip(params, unrolled.parameters(), grads, strict=True):
                buf = self.w_optim.state.get(p, {}).get("momentum_buffer")
                m = self.momentum * buf if buf is not None else 0.0
                q.copy_(p - eta * (m + g + self.wd * p))
        self.loss(unrolled, xv, yv).backward()
        d_alpha = [a.grad.clone() for a in alphas]
        vector = [q.grad for q in unrolled.parameters()]
        r = 0.01 / torch.cat([v.flatten() for v in vector]).norm()
        with torch.no_grad():
            for p, v in zip(params, vector, strict=True):
                p.add_(v, alpha=float(r))
        g_pos = torch.autograd.grad(self.loss(self.net, xt, yt), alphas)
        with torch.no_grad():
            for p, v in zip(params, vector, strict=True):
                p.sub_(v, alpha=2 * float(r))
        g_neg = torch.autograd.grad(self.loss(self.net, xt, yt), alphas)
        with torch.no_grad():
            for p, v in zip(params, vector, strict=True):
                p.add_(v, alpha=float(r))
        out = [d - eta * (gp - gn) / (2 * r) for d, gp, gn in zip(d_alpha, g_pos, g_neg,
                                                                     strict=True)]
        for a, g in zip(alphas, out, strict=True):
            a.grad = g.clone()
        return out

    def weight_grads(self, xt, yt):
        self.w_optim.zero_grad(set_to_none=True)
        loss = self.loss(self.net, xt, yt)
        loss.backward()
        return [p.grad for p in self.net.parameters()]

    def step(self, xt, yt, xv, yv):
        self.arch_grads(xt, yt, xv, yv)
        self.a_optim.step()
        self.weight_grads(xt, yt)
        nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
        self.w_optim.step()


# ----------------------------------------------------------------------------- builders


def build_fast(args, order: int, device: torch.device):
    torch.manual_seed(0)
    options = dict(channels=args.channels, layers=args.layers, batch_size=args.batch)
    if "order" in make_strategy(args.strategy).option_names():  # GDAS has no order
        options["order"] = order
    s = make_strategy(args.strategy, **options)
    s.setup_model(DartsSpace(ops=tuple(args.ops), nodes=args.nodes), args.in_channels, 2,
                  args.size, device)
    return s


def build_ref(args, order: int, device: torch.device, fast=None):
    torch.manual_seed(0)
    net = RefSupernet(list(args.ops), args.in_channels, 2, args.channels, args.layers,
                      args.nodes).to(device)
    alphas = {t: nn.Parameter(1e-3 * torch.randn(len(edge_inputs(args.nodes)), len(args.ops),
                                                 device=device)) for t in CELL_TYPES}
    if fast is not None:  # same weights and alphas as the autonas supernet
        missing, unexpected = net.load_state_dict(fast.net.state_dict(), strict=False)
        assert not unexpected and all("running" in m or "num_batches" in m for m in missing), (
            missing, unexpected)
        with torch.no_grad():
            for t in CELL_TYPES:
                alphas[t].copy_(fast.arch.alphas[t])
    w_optim = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_optim = torch.optim.Adam(alphas.values(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    return RefDarts(net, alphas, w_optim, a_optim, order, 0.9, 3e-4, 5.0)


def batch(args, device, seed, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size, generator=g,
                    dtype=torch.get_default_dtype())
    y = torch.randint(0, 2, (args.batch,), generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(device), y.to(device)


# ----------------------------------------------------------------------------- modes


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker(args) -> dict:
    """Time ``args.steps`` steps of one implementation in this process."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    fast = args.impl == "fast"
    if fast:
        s = build_fast(args, args.order, device)
        s.w_optim.param_groups[0]["lr"] = 0.025

        def step(xt, yt, xv, yv):
            s.arch_step(xt, yt, xv, yv)
            s.weight_step(xt, yt)
    else:
        ref = build_ref(args, args.order, device)
        step = ref.step
    xt, yt = batch(args, device, 1, channels_last=fast)
    xv, yv = batch(args, device, 2, channels_last=fast)
    rss_before = peak_rss_mb()
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        step(xt, yt, xv, yv)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    out = {"times": times, "median_s": statistics.median(times), "min_s": min(times),
           "steps": len(times),
           "peak_rss_mb": peak_rss_mb(),
           "rss_before_steps_mb": rss_before, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def grad_diff(args, order: int, dtype: torch.dtype = torch.float32) -> dict:
    """Max abs difference of alpha and weight gradients, same weights and batch."""
    device = torch.device(args.device)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return _grad_diff(args, order, device)
    finally:
        torch.set_default_dtype(default)


def _grad_diff(args, order: int, device: torch.device) -> dict:
    fast = build_fast(args, order, device)
    fast.w_optim.param_groups[0]["lr"] = 0.025
    ref = build_ref(args, order, device, fast)
    xt, yt = batch(args, device, 1)
    xv, yv = batch(args, device, 2)
    # one real step first so the momentum buffers (used by the unrolled step) are non-zero
    ref.weight_grads(xt, yt)
    ref.w_optim.step()
    fast.w_optim.zero_grad()
    fl = fast.loss_fn(fast.net(xt.contiguous(memory_format=torch.channels_last),
                               fast.arch_weights(fast.arch, True)), yt)
    fl.backward()
    fast.w_optim.step()
    ref_alpha = ref.arch_grads(xt, yt, xv, yv)
    params = list(fast.arch.parameters())
    xt_cl = xt.contiguous(memory_format=torch.channels_last)
    xv_cl = xv.contiguous(memory_format=torch.channels_last)
    if order == 1:
        loss = fast.loss_fn(fast.net(xv_cl, fast.arch_weights(fast.arch, True)), yv)
        fast_alpha = torch.autograd.grad(loss, params)
    else:
        from autonas.strategies.darts import unrolled_arch_grads
        fast_alpha = unrolled_arch_grads(
            fast.net, params, lambda: fast.arch_weights(fast.arch, True), fast.loss_fn,
            xt_cl, yt, xv_cl, yv, xi=0.025, w_optim=fast.w_optim, momentum=0.9,
            weight_decay=3e-4)
    ref_w = ref.weight_grads(xt, yt)
    fast.w_optim.zero_grad()
    fast.loss_fn(fast.net(xt_cl, fast.arch_weights(fast.arch, True)), yt).backward()
    fast_w = [p.grad for p in fast.net.parameters()]
    a_diff = max(float((a - b).abs().max()) for a, b in zip(ref_alpha, fast_alpha, strict=True))
    a_scale = max(float(a.abs().max()) for a in ref_alpha)
    w_diff = max(float((a - b).abs().max()) for a, b in zip(ref_w, fast_w, strict=True))
    w_scale = max(float(a.abs().max()) for a in ref_w)
    return {"alpha_grad_max_abs_diff": a_diff, "alpha_grad_max_abs": a_scale,
            "weight_grad_max_abs_diff": w_diff, "weight_grad_max_abs": w_scale}


def run_worker(args, impl: str, order: int, *extra: str) -> dict:
    """One measurement in a fresh process: its peak RSS is its own, and the memory it
    held is given back before the next one starts."""
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--order", str(order),
           *extra, *sys.argv[1:]]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--ops", nargs="+", default=list(DARTS_OPS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--orders", type=int, nargs="+", default=[1, 2])
    p.add_argument("--strategy", default="darts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--impls", nargs="+", default=["ref", "fast"])
    p.add_argument("--rounds", type=int, default=2,
                   help="worker processes per implementation, alternated so drift in the "
                        "machine's speed hits both alike")
    p.add_argument("--grad-batch", type=int, default=None,
                   help="batch of the gradient comparison (default: --batch); a smaller one "
                        "keeps float64 within memory for big supernets")
    p.add_argument("--grad-dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--grads", default=None, help=argparse.SUPPRESS)
    p.add_argument("--impl", default="fast", help=argparse.SUPPRESS)
    p.add_argument("--order", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.strategy != "darts":  # the textbook reference is plain DARTS
        args.impls = ["fast"]
        if "order" not in make_strategy(args.strategy).option_names():
            args.orders = [1]
    if args.worker and args.grads:
        args.batch = args.grad_batch or args.batch
        print(json.dumps(grad_diff(args, args.order, getattr(torch, args.grads))))
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return
    config = {k: v for k, v in vars(args).items()
              if k not in ("worker", "impl", "order", "grads")}
    results = []
    for order in args.orders:
        row: dict = {"order": order}
        runs: dict[str, list[dict]] = {impl: [] for impl in args.impls}
        for _ in range(args.rounds):
            for impl in args.impls:
                runs[impl].append(run_worker(args, impl, order))
        for impl, worker_runs in runs.items():
            times = [t for r in worker_runs for t in r["times"]]
            row[impl] = {"median_s": statistics.median(times), "min_s": min(times),
                         "steps": len(times),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in worker_runs),
                         "threads": worker_runs[0]["threads"],
                         **({"peak_cuda_mb": max(r["peak_cuda_mb"] for r in worker_runs)}
                            if "peak_cuda_mb" in worker_runs[0] else {})}
        if "ref" in row and "fast" in row:
            row["speedup"] = row["ref"]["median_s"] / row["fast"]["median_s"]
            row["peak_rss_ratio"] = row["fast"]["peak_rss_mb"] / row["ref"]["peak_rss_mb"]
            for dtype in args.grad_dtypes:
                row[f"gradients_{dtype}"] = run_worker(args, "both", order, "--grads", dtype)
        results.append(row)
    print(json.dumps({"benchmark": "darts_step", "config": config, "torch": torch.__version__,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
