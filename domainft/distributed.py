"""Several processes, one run: what a rank is, who writes, and where they wait for each other.

`torchrun` and `accelerate launch` start one process per device with WORLD_SIZE / RANK /
LOCAL_RANK in the environment. Every rank reads, checks and encodes the data the same way and
trains on its shard of each global batch (the Trainer's DDP); exactly one rank, the main one,
writes the run directory, the summary and the export, after every rank has finished training and
evaluation. A rank that fails makes the launcher stop the others, and since the run directory's
finishing files are written only by the main rank after the last barrier, a failed run never looks
complete.

A single process (the usual `domainft run`) is a world of one: every function here is then a
no-op or says "main".
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    size: int
    rank: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place among the launched ones (the launcher's environment)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    return World(size, rank, int(os.environ.get("LOCAL_RANK", str(rank)) or 0))


def is_main() -> bool:
    return world().is_main


def has_accelerator() -> bool:
    """A device the Trainer would train on instead of the CPU."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def setup() -> None:
    """Join the process group now (not when the Trainer is built), so that the main rank can create
    the run directory while the others wait. gloo on CPUs, nccl on CUDA; the Trainer (accelerate)
    then finds the group initialized and uses it."""
    if not world().distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(world().local_rank)
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def barrier() -> None:
    """Every rank waits here until all have arrived (a no-op in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather(value) -> list:
    """`value` from every rank, in rank order (a list of one in one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def backend() -> str | None:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def per_device_batch(batch_size: int, field: str = "train.batch_size") -> int:
    """The recipe's batch size is the global one (what one optimizer step sees before gradient
    accumulation), whatever the number of processes, so a recipe trains the same model on one
    device or eight; each rank takes its share."""
    size = world().size
    if batch_size % size:
        from domainft.errors import DomainftError

        raise DomainftError(f"{field}: {batch_size} does not split evenly over {size} processes (the batch "
                            f"size is the global one); use a multiple of {size}, e.g. "
                            f"--set {field}={size * max(1, round(batch_size / size))}")
    return batch_size // size
