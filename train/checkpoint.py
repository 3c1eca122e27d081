"""Sharded, crash-safe checkpoints with torch.distributed.checkpoint (DCP).

Layout of ``OUT/checkpoints/step_00001000/``:

- DCP files (``.metadata``, ``__<rank>_0.distcp``): model parameters and optimizer
  tensors, each rank writing its own shards (resharding on load is DCP's job, so a run
  may resume on another world size or strategy).
- ``rng_rank00000.pt``...: each rank's torch RNG state (CPU and CUDA) as plain tensors.
- ``meta.json``: everything that is not a tensor: the step, tokens seen, scheduler and
  data position, the resolved config, cumulative training time, and the byte size of
  every file above. Written last.

Crash safety: all of it is written to ``step_N.tmp/`` and renamed to ``step_N/`` only
when complete, so a crash mid-write leaves a ``.tmp`` that ``latest_checkpoint`` ignores.
A checkpoint that was damaged afterwards (a file truncated or missing, i.e. a size that
does not match ``meta.json``) is skipped too, and resume falls back to the previous one.

Asynchronous saves (``train.async_checkpoint``, ``AsyncCheckpoint``): ``dcp.async_save`` copies
the state to host memory and returns; the files are written by a background thread while
training goes on, and ``wait()`` (before the next save, and at the end) completes the same
``meta.json`` + rename protocol, so crash safety is unchanged: a crash mid-write leaves a
``.tmp``. At 1.1B the state is ~13 GB (fp32 weights and two Adam moments): a synchronous save
stops training for as long as the filesystem takes to write it, an asynchronous one for the copy.

The trainer hands its checkpoints to a ``Checkpointer`` (root, how many to keep, sync or async, the save in
flight, which checkpoint to resume from); what goes into ``meta.json`` is the trainer's
(``train/trainer.py``, ``Trainer.checkpoint_meta``).

Safety: only tensors go through DCP, and loading uses a planner that refuses pickled
(``bytes``) entries; RNG files are read with ``torch.load(weights_only=True)``. Nothing
in a checkpoint is ever unpickled as an arbitrary object.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import DefaultLoadPlanner
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

STEP_DIR = re.compile(r"^step_(\d{8})$")
META = "meta.json"
_OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)


class TensorOnlyLoadPlanner(DefaultLoadPlanner):
    """DCP's default planner unpickles non-tensor entries with ``weights_only=False``; refuse them."""

    def load_bytes(self, read_item, value) -> None:  # noqa: ANN001 - DCP's signature
        raise ValueError(f"checkpoint entry {read_item.dest_index.fqn!r} is a pickled object; refusing to load it")


def step_dir(root: str | os.PathLike, step: int) -> Path:
    return Path(root) / f"step_{step:08d}"


def _tensor_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict, dict]:
    """``(model_sd, optim_sd, dcp_state)``; dcp_state holds only the tensor entries of both."""
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_OPTIONS)
    tensors = {k: v for k, v in optim_sd.items() if isinstance(v, torch.Tensor)}
    return model_sd, optim_sd, {"model": model_sd, "optim": tensors}


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _fsync_json(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _begin(root: str | os.PathLike, step: int) -> tuple[Path, Path]:
    """Collective: rank 0 makes an empty ``step_N.tmp``; returns ``(final, tmp)``."""
    final, tmp = step_dir(root, step), Path(str(step_dir(root, step)) + ".tmp")
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    return final, tmp


def _finish(root: str | os.PathLike, step: int, final: Path, tmp: Path, meta: dict[str, Any], keep: int) -> Path:
    """Collective, once every rank's files are in ``tmp``: rank 0 writes meta.json, renames, prunes."""
    dist.barrier()
    if dist.get_rank() == 0:
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        _fsync_json(tmp / META, {**meta, "step": step, "world_size": dist.get_world_size(), "files": files})
        if final.exists():  # the same step saved twice (e.g. a final save right after a periodic one)
            shutil.rmtree(final)
        os.rename(tmp, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)
        if keep > 0:
            for old in complete_checkpoints(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def save_checkpoint(root: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any], device: torch.device, keep: int = 0) -> Path:
    """Collective: every rank calls it. Returns the final directory."""
    final, tmp = _begin(root, step)
    _, _, state = _tensor_state(model, optimizer)
    dcp.save(state, checkpoint_id=str(tmp))
    torch.save(_rng_state(device), tmp / f"rng_rank{dist.get_rank():05d}.pt")
    return _finish(root, step, final, tmp, meta, keep)


_CPU_GROUP: list[tuple[dist.ProcessGroup, dist.ProcessGroup]] = []  # (default group, its gloo side group)


def _cpu_group() -> dist.ProcessGroup:
    """A gloo group of its own for async_save: its thread runs DCP's planning collectives while the
    training thread uses the default group (NCCL, or gloo on CPU), and two threads must not share one
    group's collective sequence. Created once, collectively, at the first asynchronous save."""
    if not _CPU_GROUP or _CPU_GROUP[0][0] is not dist.group.WORLD:  # a new default group: a new side group
        _CPU_GROUP[:] = [(dist.group.WORLD, dist.new_group(backend="gloo"))]
    return _CPU_GROUP[0][1]


class AsyncCheckpoint:
    """A checkpoint being written in the background. Construct on every rank (collective); training may
    continue at once; ``wait()`` on every rank (collective) finishes it and returns its directory."""

    def __init__(self, root: str | os.PathLike, step: int, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, meta: dict[str, Any], device: torch.device, keep: int = 0):
        self.root, self.step, self.meta, self.keep = root, step, meta, keep
        self.final, self.tmp = _begin(root, step)
        _, _, state = _tensor_state(model, optimizer)
        if device.type == "cpu":  # host tensors: copy them, the optimizer updates the originals in place
            state = {k: {n: t.clone() for n, t in v.items()} for k, v in state.items()}
        saving = dcp.async_save(state, checkpoint_id=str(self.tmp), process_group=_cpu_group())
        self.future = getattr(saving, "upload_completion", saving)  # AsyncSaveResponse with async staging
        torch.save(_rng_state(device), self.tmp / f"rng_rank{dist.get_rank():05d}.pt")

    def wait(self) -> Path:
        self.future.result()
        return _finish(self.root, self.step, self.final, self.tmp, self.meta, self.keep)


def read_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """``meta.json`` of a checkpoint if the checkpoint is complete and intact, else None."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if ".metadata" not in files:
        return None
    for name, size in files.items():
        f = path / name
        if not f.is_file() or f.stat().st_size != size:
            return None
    return meta


def complete_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Intact checkpoint directories under ``root``, oldest first (``.tmp`` and damaged ones skipped)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if read_meta(p) is not None]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest intact checkpoint (what ``resume=auto`` picks), or None."""
    done = complete_checkpoints(root)
    return done[-1] if done else None


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> dict[str, Any]:
    """Collective: restore model, optimizer and this rank's RNG in place; returns ``meta.json``."""
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        raise FileNotFoundError(f"{path} is not a complete checkpoint")
    model_sd, optim_sd, state = _tensor_state(model, optimizer)
    dcp.load(state, checkpoint_id=str(path), planner=TensorOnlyLoadPlanner())
    optim_sd.update(state["optim"])
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=optim_sd, options=_OPTIONS)
    rng_file = path / f"rng_rank{dist.get_rank():05d}.pt"
    if rng_file.is_file() and meta.get("world_size") == dist.get_world_size():
        rng = torch.load(rng_file, map_location="cpu", weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)
    return meta


class Checkpointer:
    """The trainer's hand-off to this module: where its checkpoints go (``root``), how many it keeps (``keep``;
    0 = all), whether saves are asynchronous (``async_save``; None = on CUDA), which checkpoint a run resumes
    from, and at most one asynchronous save in flight (the next ``save`` and ``wait`` complete it).
    ``save``, ``load`` and ``wait`` are collective: every rank calls them."""

    def __init__(self, root: str | os.PathLike, device: torch.device, keep: int = 0, async_save: bool | None = None):
        self.root, self.device, self.keep = Path(root), device, keep
        self.async_save = async_save if async_save is not None else device.type == "cuda"
        self.pending: AsyncCheckpoint | None = None

    def resume_path(self, resume: str | None) -> Path | None:
        """``train.resume``: "auto" = the newest intact checkpoint (None before the first), "none" (or empty) =
        start from step 0, else the path of a checkpoint."""
        if resume == "auto":
            return latest_checkpoint(self.root)
        return None if resume in ("none", "", None) else Path(resume)

    def load(self, path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return load_checkpoint(path, model, optimizer, self.device)

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             make_meta: Callable[[], dict[str, Any]]) -> None:
        """Checkpoint ``step``; ``make_meta()`` gives its meta.json once the previous save is complete."""
        self.wait()
        if self.async_save:
            self.pending = AsyncCheckpoint(self.root, step, model, optimizer, make_meta(), self.device, self.keep)
        else:
            save_checkpoint(self.root, step, model, optimizer, make_meta(), self.device, self.keep)

    def wait(self) -> None:
        """Complete the asynchronous save in flight, if any."""
        if self.pending is not None:
            self.pending.wait()
            self.pending = None

    def latest_step(self) -> int | None:
        """The step of the newest intact checkpoint (where a rerun starts), or None."""
        newest = latest_checkpoint(self.root)
        return read_meta(newest)["step"] if newest else None


def remove_partial(root: str | os.PathLike) -> list[Path]:
    """Delete leftover ``step_*.tmp`` directories of a crashed save (rank 0, before training)."""
    root = Path(root)
    gone = [p for p in root.glob("step_*.tmp") if p.is_dir()] if root.is_dir() else []
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone
