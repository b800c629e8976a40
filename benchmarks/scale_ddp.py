"""Time one data-parallel one-shot search step (architecture step + weight step) on 1 and 2
processes, the global batch split across them; prints one JSON document.

CPU (default): gloo, one intra-op thread per process, so 2 processes use 2 cores where 1
process uses 1. ``--cuda``: NCCL, one GPU per process, bfloat16 autocast, channels_last
(the supernet's default) and ``torch.compile`` of the supernet (``--no-compile`` to leave
it out); without a CUDA GPU it prints ``{"skipped": ...}`` and exits 0.

    python benchmarks/scale_ddp.py                     # darts, C=8, 5 cells, batch 64, 28x28
    python benchmarks/scale_ddp.py --strategy gdas --batch 128 --steps 20
    python benchmarks/scale_ddp.py --cuda --channels 16 --layers 8 --batch 256

Run it on a quiet machine: timings taken next to other work mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from autonas.spaces.darts import DartsSpace
from autonas.strategies import make_strategy
from autonas.training import distributed


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="darts",
                        help="a one-shot strategy that runs data-parallel (darts, darts2, "
                        "pc-darts, gdas, spos)")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="global batch (all ranks)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cuda", action="store_true", help="NCCL, AMP, torch.compile")
    parser.add_argument("--no-compile", action="store_true")
    return parser.parse_args()


def _step_times(rank: int, args: argparse.Namespace, out: str) -> None:
    """One rank: build the supernet, run warm-up and timed steps on its shard."""
    device = distributed.init_from_env(torch.device("cuda" if args.cuda else "cpu"))
    try:
        torch.manual_seed(0)
        strategy = make_strategy(args.strategy, DartsSpace(), channels=args.channels,
                                 layers=args.layers, batch_size=args.batch)
        strategy.setup_model(DartsSpace(), 1, 2, args.size, device)
        compiled = "off"
        if args.cuda and not args.no_compile:
            try:
                strategy.net = torch.compile(strategy.net)
                compiled = "on"
            except Exception as exc:  # report, time without it
                compiled = f"failed: {type(exc).__name__}: {exc}"
        gen = torch.Generator().manual_seed(1)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if args.cuda
               else contextlib.nullcontext())
        times = []
        for step in range(args.warmup + args.steps):
            x = torch.randn(2, args.batch, 1, args.size, args.size, generator=gen)
            y = torch.randint(0, 2, (2, args.batch), generator=gen)
            train = distributed.shard(x[0], y[0])
            val = distributed.shard(x[1], y[1])
            xt, yt, xv, yv = (t.to(device) for t in (train.x, train.y, val.x, val.y))
            xt, xv = (t.contiguous(memory_format=torch.channels_last) for t in (xt, xv))
            strategy.loss_fn.share = train.share
            if args.cuda:
                torch.cuda.synchronize()
            distributed.barrier()
            start = time.perf_counter()
            with distributed.global_batch_statistics(), amp:
                strategy.arch_step(xt, yt, xv, yv)
                strategy.weight_step(xt, yt)
            if args.cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if step >= args.warmup:
                times.append(distributed.sum_scalar(elapsed) / distributed.world_size())
        if distributed.is_writer():
            Path(out).write_text(json.dumps({
                "median_step_s": statistics.median(times), "min_step_s": min(times),
                "per_rank_batch": distributed.shard_bounds(args.batch)[1],
                "compile": compiled,
            }))
    finally:
        distributed.teardown()


def main() -> None:
    args = _options()
    if args.cuda and not torch.cuda.is_available():
        print(json.dumps({"skipped": "--cuda asked for, but PyTorch sees no CUDA GPU"}))
        return
    if args.cuda:
        args.processes = [n for n in args.processes if n <= torch.cuda.device_count()]
    results = {"config": {k: v for k, v in vars(args).items()},
               "backend": "nccl" if args.cuda else "gloo", "threads_per_process": 1,
               "torch": torch.__version__, "processes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            out = Path(tmp) / f"p{n}.json"
            distributed.launch_local(_step_times, n, (args, str(out)), threads=1)
            results["processes"][str(n)] = json.loads(out.read_text())
    base = results["processes"].get("1", {}).get("median_step_s")
    for row in results["processes"].values():
        if base:
            row["speedup_vs_1"] = base / row["median_step_s"]
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
