"""Batches from the mixer's memory-mapped shards, in an order that is a pure function of (seed, step).

The training stream is cut into ``n_windows = (n_tokens - 1) // seq_len`` non-overlapping
windows of ``seq_len + 1`` tokens (inputs plus the shifted targets; consecutive windows
share one boundary token). Epoch ``e`` visits every window once, in the order of a
permutation drawn from ``(seed, e)``. Global sample ``i`` is window ``perm_e[i mod n]``
with ``e = i // n``, and step ``s`` holds samples ``[s * G, (s + 1) * G)`` for a global
batch of ``G`` sequences.

Consequences: a resumed run asks for step ``s + 1`` and gets exactly the batch the
uninterrupted run would have; the global batch does not depend on the number of ranks
(rank ``r`` of ``W`` takes rows ``[r G/W, (r+1) G/W)``), so a job may resume on a
different world size; and each rank reads only the windows it trains on, straight from
the memory map.

Reading (``StepBatches.tokens``) gathers all windows of a step with one fancy index per shard, in
int32 (half the bytes of int64; token ids are uint16, or uint32 for vocabularies over 65,536, on disk: any
vocabulary below 2**31 ids fits, tests/test_wide_vocab.py reads 131,072); ``StepPrefetcher`` reads
step ``s + 1`` in a background thread, into pinned memory on CUDA, while step ``s`` trains, copies
it without blocking and widens it to int64 on the device. Batches are the same values as a plain
``stream.window`` loop (tests/test_train_data.py).

Phased mixtures (``mix.phases``; the mixer writes one stream per phase): ``PhasedBatches`` runs phase
``p`` for ``phase_steps(...)[p]`` steps over its own stream, with ``StepBatches(..., phase=p)``, whose
window order is drawn from ``(seed, p, epoch)``: the batches of a step are a pure function of
``(seed, phase, step inside the phase)``, so a run resumes exactly inside a phase and across a boundary.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from mixtures.shards import TokenStream

if TYPE_CHECKING:
    import torch


class StepBatches:
    """Deterministic per-step, per-rank batches over one ``TokenStream``."""

    def __init__(self, stream: TokenStream, seq_len: int, global_batch: int, rank: int, world: int,
                 micro_batch: int, seed: int, phase: int | None = None):
        if global_batch % (world * micro_batch):
            raise ValueError(f"global batch of {global_batch} sequences is not a multiple of "
                             f"world_size ({world}) x micro_batch ({micro_batch})")
        self.stream, self.seq_len, self.seed, self.phase = stream, seq_len, seed, phase
        self.global_batch, self.rank, self.world, self.micro_batch = global_batch, rank, world, micro_batch
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"{len(stream)} tokens cannot fill one window of {seq_len + 1}")
        self.grad_accum = global_batch // (world * micro_batch)
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        """Window order of ``epoch`` (cached: consecutive steps stay in the same epoch)."""
        if epoch != self._perm_epoch:
            key = [self.seed, epoch] if self.phase is None else [self.seed, self.phase, epoch]
            self._perm = np.random.default_rng(key).permutation(self.n_windows)
            self._perm_epoch = epoch
        return self._perm

    def sample_windows(self, samples: np.ndarray) -> np.ndarray:
        """Window indices of global sample indices ``samples`` (sample ``i`` is window ``perm_e[i mod n]``)."""
        epochs, pos = np.divmod(np.asarray(samples, dtype=np.int64), self.n_windows)
        out = np.empty(len(pos), dtype=np.int64)
        for epoch in np.unique(epochs):  # one or two epochs per step
            at = epochs == epoch
            out[at] = self.permutation(int(epoch))[pos[at]]
        return out

    def rank_samples(self, step: int) -> np.ndarray:
        """Global sample indices this rank trains on at ``step`` (0-based), ``(grad_accum, micro_batch)``."""
        per_rank = self.global_batch // self.world
        first = step * self.global_batch + self.rank * per_rank
        return np.arange(first, first + per_rank, dtype=np.int64).reshape(self.grad_accum, self.micro_batch)

    def tokens(self, step: int) -> np.ndarray:
        """This rank's tokens of ``step``: int32 ``(grad_accum, micro_batch, seq_len + 1)``."""
        samples = self.rank_samples(step)
        return gather_windows(self.stream, self.sample_windows(samples.ravel()) * self.seq_len,
                              self.seq_len + 1).reshape(*samples.shape, self.seq_len + 1)

    def micro_batches(self, step: int) -> list[np.ndarray]:
        """``grad_accum`` int64 arrays of shape ``(micro_batch, seq_len + 1)`` for ``step``."""
        return list(self.tokens(step).astype(np.int64))

    def epochs_done(self, step: int) -> float:
        """Passes over the training windows completed after ``step`` steps (the mixer already
        repeats small sources; this counts repeats of the whole mixture on top)."""
        return step * self.global_batch / self.n_windows


def phase_steps(phase_tokens: list[int], global_batch_tokens: int, steps: int = 0) -> list[int]:
    """Optimizer steps of each phase of a phased mixture.

    ``steps == 0`` (one pass): phase ``p`` runs ``ceil(tokens_p / global_batch_tokens)`` steps. ``steps > 0``
    (``train.steps``): the steps are shared out by tokens, phase ``p`` ending at step
    ``round(steps * (tokens_0 + ... + tokens_p) / total)``; every phase needs at least one step."""
    if not phase_tokens:
        raise ValueError("a phased mixture needs at least one phase")
    if steps <= 0:
        return [max(1, math.ceil(t / global_batch_tokens)) for t in phase_tokens]
    total = sum(phase_tokens)
    ends = [round(steps * c / total) for c in np.cumsum(phase_tokens).tolist()]
    counts = np.diff([0, *ends]).tolist()
    if min(counts) < 1:
        raise ValueError(f"train.steps={steps} leaves a phase without a step (phases of {phase_tokens} tokens "
                         f"get {counts} steps): raise train.steps, or 0 for one pass over every phase")
    return [int(c) for c in counts]


class PhasedBatches:
    """The steps of a phased mixture: phase ``p`` (its own ``StepBatches``) trains steps
    ``[starts[p], starts[p] + steps[p])``, asking its batches for the step inside the phase.
    Same interface as ``StepBatches`` for the loop and ``StepPrefetcher``."""

    def __init__(self, phases: list[StepBatches], steps: list[int], names: list[str]):
        if len(phases) != len(steps) or len(phases) != len(names) or not phases:
            raise ValueError("one StepBatches, step count and name per phase")
        self.phases, self.steps, self.names = phases, list(steps), list(names)
        self.starts = np.cumsum([0, *steps])[:-1].astype(int).tolist()
        self.total_steps = int(sum(steps))
        first = phases[0]
        self.global_batch, self.grad_accum, self.seq_len = first.global_batch, first.grad_accum, first.seq_len
        self.rank, self.world, self.micro_batch, self.seed = first.rank, first.world, first.micro_batch, first.seed
        self.n_windows = int(sum(b.n_windows for b in phases))

    def locate(self, step: int) -> tuple[int, int]:
        """``(phase, step inside the phase)`` of global step ``step`` (0-based)."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} is outside the {self.total_steps} steps of the phases")
        p = int(np.searchsorted(self.starts, step, side="right")) - 1
        return p, step - self.starts[p]

    def tokens(self, step: int) -> np.ndarray:
        p, local = self.locate(step)
        return self.phases[p].tokens(local)

    def micro_batches(self, step: int) -> list[np.ndarray]:
        return list(self.tokens(step).astype(np.int64))

    def epochs_done(self, step: int) -> float:
        """Passes over the current phase's windows after ``step`` steps of the run."""
        if step <= 0:
            return 0.0
        p, local = self.locate(min(step, self.total_steps) - 1)
        return self.phases[p].epochs_done(local + 1)


def eval_windows(stream: TokenStream, seq_len: int, max_tokens: int) -> int:
    """How many leading non-overlapping windows of a validation stream one evaluation reads:
    the same fixed windows every time, so evaluations are comparable across steps and runs."""
    return max(0, min((len(stream) - 1) // seq_len, max_tokens // seq_len))


def gather_windows(stream: TokenStream, starts: np.ndarray, span: int) -> np.ndarray:
    """int32 ``(len(starts), span)``: tokens ``[start, start + span)`` of ``stream`` for each start.

    Windows inside one shard are read with one fancy index per shard (numpy copies only those
    elements out of the memory map); the rare window that crosses a shard boundary goes through
    ``TokenStream.window``."""
    out = np.empty((len(starts), span), dtype=np.int32)
    shard = np.searchsorted(stream.starts, starts, side="right") - 1
    inside = starts + span <= stream.starts[shard + 1]
    offsets = np.arange(span, dtype=np.int64)
    for s in np.unique(shard[inside]):
        rows = np.flatnonzero(inside & (shard == s))
        local = starts[rows] - stream.starts[s]
        out[rows] = stream.shards[s].tokens[local[:, None] + offsets]
    for row in np.flatnonzero(~inside):
        out[row] = stream.window(int(starts[row]), span)
    return out


def _use_device(device: torch.device) -> None:
    import torch

    torch.cuda.set_device(device)


class StepPrefetcher:
    """Each step's micro-batches on ``device`` as int64 tensors, read one step ahead in a thread.

    ``get(step)`` returns the ``grad_accum`` micro-batches of ``step`` and starts reading
    ``step + 1`` (if below ``end``) while the caller trains. On CUDA the host copy is pinned, so
    ``.to(device, non_blocking=True)`` really is asynchronous, and the int32 -> int64 cast runs on
    the GPU. ``enabled=False`` is the plain path: read in the caller's thread, int64 on the host,
    unpinned (what the trainer did before; kept for comparison)."""

    def __init__(self, batches: StepBatches, device: torch.device, end: int, enabled: bool = True):
        self.batches, self.device, self.end, self.enabled = batches, device, end, enabled
        self.pin = enabled and device.type == "cuda"
        # the reading thread pins on this rank's GPU (a new thread would otherwise use GPU 0: on a node of
        # several ranks, every rank would then open a CUDA context there; DataLoader's pin thread does the same)
        init = partial(_use_device, device) if self.pin else None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch", initializer=init) if enabled else None
        self.pending: dict[int, Future] = {}

    def _host(self, step: int) -> torch.Tensor:
        import torch

        t = torch.from_numpy(self.batches.tokens(step))
        return t.pin_memory() if self.pin else t

    def get(self, step: int) -> list[torch.Tensor]:
        import torch

        if not self.enabled:
            return [torch.from_numpy(a).to(self.device, non_blocking=True) for a in self.batches.micro_batches(step)]
        future = self.pending.pop(step, None)
        host = future.result() if future is not None else self._host(step)
        if step + 1 < self.end and step + 1 not in self.pending:
            self.pending[step + 1] = self.pool.submit(self._host, step + 1)
        return list(host.to(self.device, non_blocking=True).long().unbind(0))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pending.clear()
