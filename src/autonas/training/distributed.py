"""Data-parallel training with torch.distributed: set-up, sharding and all-reduce helpers.

Every process (rank) holds the whole model and computes on its shard of each global batch;
the gradients of the weights and of the architecture parameters are summed across ranks
after every backward pass. Each rank scales its loss by its share of the global batch
(``shard.share``), so the sum equals the gradient of the mean loss over the global batch:
the same update a single process makes on the whole batch.

BatchNorm in training mode normalises with the statistics of the global batch
(:func:`global_batch_statistics`, a differentiable all-reduce of the batch statistics;
``torch.nn.SyncBatchNorm`` refuses CPU tensors in this torch version).

Outside a process group every helper is a no-op, so single-process runs are unchanged.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


# ----------------------------------------------------------------------------- set-up


def env_world_size() -> int:
    """The world size a launcher (torchrun, ``--ddp``) put in the environment (1 if none)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a whole number; "
                          "unset it or start the processes with torchrun") from None


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_writer() -> bool:
    """Whether this process writes files and draws progress (rank 0, or no process group)."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group the environment describes (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``, as torchrun and ``--ddp`` set them).

    Returns the device this rank computes on: ``cuda:LOCAL_RANK`` on GPUs.
    """
    if is_distributed() or env_world_size() <= 1:
        return device
    missing = [k for k in ENV_KEYS[:4] if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set but {', '.join(missing)} are not; start the "
                          "processes with torchrun or `autonas run --ddp N`")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"rank {local} has no GPU of its own ({torch.cuda.device_count()} "
                              "visible); use fewer processes or --device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), device_id=device if device.type == "cuda"
                            else None)
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port nobody listens on now (for the rendezvous of locally launched ranks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_world_size(n: int) -> None:
    if n < 1:
        raise ConfigError(f"--ddp needs at least 1 process, got {n}; e.g. --ddp 2")


def launch_local(fn: Callable[..., Any], nprocs: int, args: Sequence[Any] = (),
                 threads: int | None = None) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` fresh processes joined in one process group.

    Each process gets ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
    and calls :func:`init_from_env` itself (through ``fn``). A rank that fails ends the
    others (``torch.multiprocessing``'s error is raised here); Ctrl-C raises
    KeyboardInterrupt here once the ranks have ended.
    """
    import torch.multiprocessing as mp

    check_world_size(nprocs)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "WORLD_SIZE": str(nprocs)}
    context = mp.start_processes(_bootstrap, args=(fn, env, threads, tuple(args)),
                                 nprocs=nprocs, join=False, start_method="spawn")
    try:
        while not context.join():
            pass
        return
    except KeyboardInterrupt:
        pass
    # Ctrl-C reached the ranks too: they stop and leave their last checkpoint; wait for
    # them (a second Ctrl-C, or two minutes, ends them) and pass the interrupt on.
    try:
        for process in context.processes:
            process.join(timeout=120)
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    raise KeyboardInterrupt


def _bootstrap(local_rank: int, fn: Callable[..., Any], env: dict[str, str],
               threads: int | None, args: tuple) -> None:
    os.environ.update(env, RANK=str(local_rank), LOCAL_RANK=str(local_rank))
    if threads:
        torch.set_num_threads(threads)
    fn(local_rank, *args)


# ----------------------------------------------------------------------------- collectives


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any: a stop decision all ranks take together
    (each rank's clock reads differently, and ranks that disagree would wait forever)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_value(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensors: Iterable[torch.Tensor | None]) -> None:
    """Sum ``tensors`` across ranks in place (one flat collective; ``None`` entries skipped)."""
    if not is_distributed():
        return
    present = [t for t in tensors if t is not None]
    if not present:
        return
    flat = torch.cat([t.detach().reshape(-1).to(present[0].dtype) for t in present])
    dist.all_reduce(flat)
    offset = 0
    with torch.no_grad():
        for t in present:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n


def reduce_gradients(params: Iterable[torch.Tensor]) -> None:
    """Sum the ``.grad`` of ``params`` across ranks (the losses were scaled by the shard
    share, so the sum is the gradient of the global batch's mean loss).

    A parameter without a gradient is left without one, as in a single process.
    """
    if not is_distributed():
        return
    # A parameter without a gradient (an op outside the sampled path) has none on every
    # rank: all ranks sample the same path, so the flat layouts agree.
    all_reduce_sum(p.grad for p in params)


def reduce_tensors(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The across-rank sum of ``tensors`` (new tensors; the inputs are left as they are)."""
    if not is_distributed():
        return tensors
    out = [t.detach().clone() for t in tensors]
    all_reduce_sum(out)
    return out


def sum_scalar(value: float) -> float:
    """The sum of a float over ranks."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item())


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (all start equal)."""
    if not is_distributed():
        return
    for t in [*module.parameters(), *module.buffers()]:
        with torch.no_grad():
            dist.broadcast(t.data, src=0)


def gather_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` computed in parts: each rank takes its contiguous slice of the rows of ``x``
    and the outputs of all ranks are gathered in order (the same rows as one process)."""
    if not is_distributed():
        return fn(x)
    world, me = world_size(), rank()
    parts = torch.tensor_split(torch.arange(x.shape[0]), world)
    mine = fn(x[parts[me]])
    device = _comm_device()
    longest = max(len(p) for p in parts)
    padded = torch.zeros((longest, *mine.shape[1:]), dtype=mine.dtype, device=device)
    padded[: mine.shape[0]] = mine.to(device)
    chunks = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(chunks, padded)
    return torch.cat([c[: len(p)] for c, p in zip(chunks, parts)]).to(mine.device)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------------- sharding


def shard_bounds(n: int, world: int | None = None, me: int | None = None) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a batch of ``n`` rows that rank ``me`` takes (contiguous,
    sizes differ by at most one)."""
    world = world_size() if world is None else world
    me = rank() if me is None else me
    base, extra = divmod(n, world)
    start = me * base + min(me, extra)
    return start, start + base + (1 if me < extra else 0)


@dataclass
class Shard:
    """This rank's rows of one global batch, and their share of it (the loss scale)."""

    x: torch.Tensor
    y: torch.Tensor
    share: float


def shard(x: torch.Tensor, y: torch.Tensor) -> Shard:
    """This rank's part of the global batch ``(x, y)``; the whole of it outside a group."""
    n = x.shape[0]
    if not is_distributed():
        return Shard(x, y, 1.0)
    start, stop = shard_bounds(n)
    if stop <= start:
        raise ConfigError(f"a batch of {n} images cannot be split across {world_size()} "
                          "processes; use a batch size of at least the number of processes")
    return Shard(x[start:stop], y[start:stop], (stop - start) / n)


class ShardedBatches:
    """Iterate this rank's shard of every batch of ``loader``.

    Every rank draws the same global batch (same order, same augmentation: the loader's
    generator is seeded alike on all ranks) and keeps its rows, so the union of the shards
    is exactly the batch a single process trains on. ``share`` is the share of the last
    batch yielded.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.share = 1.0

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def device(self) -> torch.device:
        return self.loader.device

    def __getattr__(self, name: str) -> Any:
        """The wrapped loader's attributes (``num_samples``, ``x``, ``y``: all ranks')."""
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xb, yb in self.loader:
            part = shard(xb, yb)
            self.share = part.share
            yield part.x, part.y


# ----------------------------------------------------------------------------- BatchNorm


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) with a gradient: the gradient of a sum over ranks with respect to
    one rank's summand is the sum of the ranks' output gradients."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over ranks, differentiable (``x`` itself outside a group)."""
    return _SumAcrossRanks.apply(x) if is_distributed() else x


def _global_batch_norm(x: torch.Tensor,
                       running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                       weight: torch.Tensor | None, bias: torch.Tensor | None,
                       momentum: float | None, eps: float) -> torch.Tensor:
    """Batch normalisation with the mean and variance of the global batch.

    Two all-reduces (sum, then the centred sum of squares, for precision) that carry
    gradients (:func:`sum_across_ranks`): the gradient flows through the statistics to
    every rank's inputs, as in one process on the whole batch.
    """
    dims = [d for d in range(x.dim()) if d != 1]
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x.float()
    count = torch.tensor([float(x.numel() // max(1, x.shape[1]))], device=x.device)
    dist.all_reduce(count)
    mean = sum_across_ranks(xf.sum(dims)) / count
    centred = xf - mean.view(shape)
    var = sum_across_ranks((centred * centred).sum(dims)) / count
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            m = 0.1 if momentum is None else momentum
            unbiased = var.detach() * (count / (count - 1).clamp_min(1))
            running_mean.lerp_(mean.detach().to(running_mean.dtype), m)
            running_var.lerp_(unbiased.to(running_var.dtype), m)
    out = centred * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out.to(x.dtype)


@contextmanager
def global_batch_statistics() -> Iterator[None]:
    """Inside this block, every batch normalisation that uses batch statistics (training
    mode, or BatchNorms without running statistics) normalises by the global batch.

    It works at the level of ``torch.nn.functional.batch_norm``, which the BatchNorm modules
    and the fused supernet ops all call, so the modules stay as they are (state dicts and
    checkpoints do not change). ``torch.nn.SyncBatchNorm`` is no alternative here: it runs
    on GPUs only, and the supernet's fused ops call the functional form directly. Outside a
    process group this does nothing. All ranks must run the same forward passes inside it.
    """
    if not is_distributed():
        yield
        return
    original = F.batch_norm

    def batch_norm(input: torch.Tensor, running_mean: torch.Tensor | None,
                   running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                   bias: torch.Tensor | None = None, training: bool = False,
                   momentum: float | None = 0.1, eps: float = 1e-5) -> torch.Tensor:
        if not training:
            return original(input, running_mean, running_var, weight, bias, training,
                            momentum, eps)
        return _global_batch_norm(input, running_mean, running_var, weight, bias,
                                  momentum, eps)

    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = original


def prepare_model(module: nn.Module) -> nn.Module:
    """Rank 0's weights on every rank (all start equal). No-op outside a process group."""
    broadcast_module(module)
    return module


def scaled(loss: torch.Tensor, share: float) -> torch.Tensor:
    """The loss this rank back-propagates: its shard's share of the global mean loss."""
    return loss if share == 1.0 else loss * share
