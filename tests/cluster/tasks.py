"""What the cluster tests run inside PyTorchJob pods (pickled by value into each bundle)."""

from __future__ import annotations

import os
import sys
import time


def allreduce_rank() -> int:
    """Every rank adds its rank over gloo; rank 0 returns the sum (0+1+2+3 = 6 on 4 ranks)."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    # One write per line: two ranks of a node share the pod's stdout, and print() writes the
    # text and the newline separately, which interleaves them.
    sys.stdout.write(f"all_reduce rank={rank} sum={int(total.item())} world={world}\n")
    sys.stdout.flush()
    dist.destroy_process_group()
    return int(total.item())


def operator_env() -> dict[str, str]:
    """The environment the training operator gave this pod (and torchrun, where it ran)."""
    keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_NNODES", "PET_NODE_RANK",
            "PET_NPROC_PER_NODE", "PET_MASTER_ADDR", "PET_MASTER_PORT")  # fmt: skip
    env = {k: os.environ[k] for k in keys if k in os.environ}
    print("env " + " ".join(f"{k}={v}" for k, v in sorted(env.items())), flush=True)
    return env


def ticks(seconds: int = 300) -> None:
    """Prints a numbered line every second: something to follow, list and cancel."""
    for i in range(seconds):
        print(f"tick {i}", flush=True)
        time.sleep(1)


def square(x: int) -> int:
    print(f"square of {x}", flush=True)
    return x * x


def raises() -> None:
    def inner_helper() -> None:
        raise ValueError("broken on purpose in the pod")

    inner_helper()


def eat_memory(mib: int = 2048) -> None:
    """Allocates (and touches) ``mib`` MiB, 64 MiB at a time, beyond any small memory limit."""
    chunks = []
    for i in range(mib // 64):
        chunks.append(bytearray(64 * 1024 * 1024))
        print(f"holding {(i + 1) * 64} MiB", flush=True)
    print("still alive", flush=True)
