"""Training-step time with and without a competing busy process: OpenMP's default wait
policy, OMP_WAIT_POLICY=PASSIVE, and one thread.

Each setting is timed in a fresh process, because OpenMP reads OMP_WAIT_POLICY once, when
PyTorch loads it. The step is one SGD step (forward, backward, update) of the default
retraining network (DARTS cells, a fixed random genotype) on a 28x28x1 batch. "Busy" runs
the timing next to ``--busy`` processes that spin on the CPU (pure Python loops), as other
users' jobs would. Prints one JSON document: median and 90th-percentile step seconds per
setting and load, and how many times slower each setting is when busy.

Run it on an otherwise quiet machine; it decides whether autonas should default to PASSIVE
(see ``autonas/startup.py``):

    python benchmarks/contention.py                      # 2 threads, 1 busy process, 30 steps
    python benchmarks/contention.py --threads 4 --busy 4 --steps 50
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "default": {"threads": None, "policy": None},
    "passive": {"threads": None, "policy": "PASSIVE"},
    "one-thread": {"threads": 1, "policy": None},
}


def spin(stop_after: float) -> None:
    """Keep one core busy (a competing process) until ``stop_after`` seconds have passed."""
    end = time.monotonic() + stop_after
    x = 0
    while time.monotonic() < end:
        x = (x * 31 + 7) % 1_000_003


def worker(threads: int, steps: int, warmup: int, batch: int, channels: int,
           layers: int) -> dict[str, float]:
    """Time ``steps`` training steps in this process (after ``warmup`` untimed ones)."""
    import random

    import torch

    from autonas.spaces import BuildSpec
    from autonas.spaces.darts import DartsSpace
    from autonas.training.device import to_channels_last

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    space = DartsSpace()
    arch = space.sample(random.Random(0))
    model = to_channels_last(space.build(arch, BuildSpec(
        in_channels=1, num_classes=2, image_size=28, channels=channels, layers=layers)))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        torch.nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    return {"median_s": statistics.median(times),
            "p90_s": times[min(len(times) - 1, int(0.9 * len(times)))],
            "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def timed_setting(name: str, args: argparse.Namespace, busy: int) -> dict[str, float]:
    setting = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",
                                                            "AUTONAS_OMP_WAIT_POLICY")}
    threads = setting["threads"] or args.threads
    env["OMP_NUM_THREADS"] = str(threads)
    if setting["policy"]:
        env["OMP_WAIT_POLICY"] = setting["policy"]
    spinners = [multiprocessing.Process(target=spin, args=(3600.0,), daemon=True)
                for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        cmd = [sys.executable, __file__, "--worker", "--threads", str(threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", str(args.batch), "--channels", str(args.channels),
               "--layers", str(args.layers)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    return json.loads(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads of the default and "
                   "PASSIVE settings")
    p.add_argument("--busy", type=int, default=1, help="competing busy processes")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.threads, args.steps, args.warmup, args.batch,
                                args.channels, args.layers)))
        return
    results: dict[str, dict] = {}
    for name in args.settings:
        idle = timed_setting(name, args, busy=0)
        busy = timed_setting(name, args, busy=args.busy)
        results[name] = {"idle": idle, "busy": busy,
                         "busy_over_idle": busy["median_s"] / idle["median_s"]}
    print(json.dumps({"benchmark": "contention", "cpu_count": os.cpu_count(),
                      "busy_processes": args.busy, "steps": args.steps, "batch": args.batch,
                      "network": {"channels": args.channels, "layers": args.layers},
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
