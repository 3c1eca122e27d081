"""Process groups and data-parallel strategies, applied to a plain ``Transformer`` (torchtitan-style).

One code path for every launch: under ``torchrun`` the usual ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK`` variables select the rank; a plain ``python -m train.run`` becomes a 1-rank
group on an in-process store. NCCL on CUDA, gloo on CPU.

Strategies (``train.strategy``):

- ``ddp``: every rank holds the whole model and optimizer; gradients are all-reduced
  (``DistributedDataParallel``). Fastest when the model fits.
- ``fsdp``: full shard (ZeRO-3): parameters, gradients and optimizer states are split over
  all ranks; parameters are all-gathered per block for forward/backward
  (FSDP2 ``fully_shard`` on every block, then the root).
- ``hsdp``: shard within groups of ``sharding_factor`` ranks, replicate across groups,
  on a 2-D mesh ``(replicate, shard)``: intra-node sharding with inter-node all-reduce.
  ``sharding_factor=1`` is DDP, ``= world_size`` is full shard.
- ``cpu_offload``: ``fsdp`` with FSDP2's ``CPUOffloadPolicy``: sharded parameters,
  gradients and optimizer states live in host memory and the optimizer step runs there.
- ``none``: no wrapper at all (one process only); bf16 through autocast, as under ``ddp``.

FSDP at world size 1 (``reshard_after_forward=None``, the default): nothing is sharded, so the
parameters are gathered (cast to bf16) once per optimizer step and kept through forward, backward
and every micro-batch, instead of twice per micro-batch; numerics stay FSDP's (bf16 parameters,
fp32 master weights and gradient accumulation). On more ranks, blocks reshard after forward
(ZeRO-3) as before.

Mixed precision keeps the blocks' floating-point *inputs* as they come
(``cast_forward_inputs=False``): the residual stream is bf16 already, and the rotary cos/sin
tables must stay fp32 (FSDP2's default would round them to bf16 before ``apply_rope``).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

STRATEGIES = ("ddp", "fsdp", "hsdp", "cpu_offload", "none")


def init_distributed(device: str = "auto", timeout_s: float = 600.0) -> tuple[int, int, torch.device]:
    """Join (or create) the default process group; returns ``(rank, world_size, device)``.

    ``device="auto"`` picks CUDA when available. Without torchrun variables a 1-rank group
    on an in-process ``HashStore`` keeps the single-process path identical to the
    distributed one (DCP, collectives and FSDP all still work).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = torch.device(device, local_rank) if device == "cuda" else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout,
                                    device_id=dev if dev.type == "cuda" else None)
        else:
            if world != 1:
                raise RuntimeError("WORLD_SIZE > 1 without MASTER_ADDR: launch with torchrun")
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    return dist.get_rank(), dist.get_world_size(), dev


def build_mesh(strategy: str, world: int, device: torch.device, sharding_factor: int | None) -> DeviceMesh:
    """1-D mesh for ddp/fsdp/cpu_offload/none; 2-D ``(dp_replicate, dp_shard)`` for hsdp."""
    if strategy not in STRATEGIES:
        raise ValueError(f"train.strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "none" and world != 1:
        raise ValueError(f"train.strategy=none trains in one process, not {world}: use ddp or fsdp")
    if strategy == "hsdp":
        factor = sharding_factor or world
        if factor < 1 or world % factor:
            raise ValueError(f"sharding_factor={factor} must divide world_size={world}")
        return init_device_mesh(device.type, (world // factor, factor), mesh_dim_names=("dp_replicate", "dp_shard"))
    return init_device_mesh(device.type, (world,), mesh_dim_names=("dp",))


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in backward: ~1/3 more compute, far less memory."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for name, block in list(model.layers.items()):
        model.layers[name] = checkpoint_wrapper(block, preserve_rng_state=False)


def apply_compile(model: nn.Module) -> None:
    """``torch.compile`` each block in place (same parameter names; blocks share one graph)."""
    for block in model.layers.values():
        block.compile()


def apply_data_parallel(model: nn.Module, strategy: str, mesh: DeviceMesh, device: torch.device,
                        param_dtype: torch.dtype | None, reshard_after_forward: bool | None = None) -> nn.Module:
    """Wrap ``model`` for ``strategy``; returns the module to call (DDP wraps, FSDP2 is in place, none is none).

    Mixed precision under FSDP2: parameters gathered in ``param_dtype`` (bf16 on GPU),
    gradients reduced in fp32 (``reduce_dtype``), master weights and optimizer in fp32.
    ``reshard_after_forward``: free each block's gathered parameters after its forward (and
    gather again in backward); ``None`` = yes on several ranks, no at world size 1, where the
    parameters then also stay gathered between micro-batches (see ``set_gradient_sync``).
    """
    if strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       process_group=mesh.get_group())
    if strategy == "cpu_offload" and device.type != "cuda":
        raise ValueError("strategy cpu_offload moves GPU shards to host memory and needs a CUDA device; "
                         "on CPU the parameters already live in host memory: use fsdp")
    mp_root = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32) if param_dtype else \
        MixedPrecisionPolicy()
    mp_block = dataclasses.replace(mp_root, cast_forward_inputs=False)  # rotary tables stay fp32
    offload: OffloadPolicy = CPUOffloadPolicy() if strategy == "cpu_offload" else OffloadPolicy()
    if reshard_after_forward is None:
        reshard_after_forward = mesh.size() > 1 or strategy == "cpu_offload"
    n = len(model.layers)
    for i, block in enumerate(model.layers.values()):
        # The last block's parameters are needed again right away by backward: keep them gathered.
        fully_shard(block, mesh=mesh, mp_policy=mp_block, offload_policy=offload,
                    reshard_after_forward=reshard_after_forward and i < n - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp_root, offload_policy=offload)
    # Keep the gathered parameters through the micro-batches of a step too (world size 1: they are
    # all there is; set_gradient_sync reshards after the last micro-batch's backward).
    model._keep_gathered = not reshard_after_forward and strategy != "cpu_offload"
    return model


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skip the gradient all-reduce / reduce-scatter on all but the last micro-batch (``enabled`` = last).

    FSDP with ``reshard_after_forward`` off also keeps its parameters gathered until that last
    backward, so they are gathered and cast once per optimizer step, not once per micro-batch."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
        if getattr(model, "_keep_gathered", False):
            model.set_reshard_after_backward(enabled)
    elif hasattr(model, "require_backward_grad_sync"):  # DDP (what no_sync() toggles)
        model.require_backward_grad_sync = enabled


def local_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients (0 after ``zero_grad(set_to_none=True)``) and
    optimizer states (its shards only).

    The measured counterpart of the planner's memory model: under fsdp each is ~1/world
    of ddp's.
    """
    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t

    seen: set[int] = set()
    params = grads = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        params += local(p).numel() * p.element_size()
        if p.grad is not None:
            grads += local(p.grad).numel() * p.grad.element_size()
    optim = sum(local(v).numel() * v.element_size() for s in optimizer.state.values()
                for v in s.values() if isinstance(v, torch.Tensor))
    return {"params": params, "grads": grads, "optimizer": optim}


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this rank: CUDA max allocated on GPU, process peak RSS on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
