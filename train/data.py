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
"""

from __future__ import annotations

import numpy as np

from mixtures.shards import TokenStream


class StepBatches:
    """Deterministic per-step, per-rank batches over one ``TokenStream``."""

    def __init__(self, stream: TokenStream, seq_len: int, global_batch: int, rank: int, world: int,
                 micro_batch: int, seed: int):
        if global_batch % (world * micro_batch):
            raise ValueError(f"global batch of {global_batch} sequences is not a multiple of "
                             f"world_size ({world}) x micro_batch ({micro_batch})")
        self.stream, self.seq_len, self.seed = stream, seq_len, seed
        self.global_batch, self.rank, self.world, self.micro_batch = global_batch, rank, world, micro_batch
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"{len(stream)} tokens cannot fill one window of {seq_len + 1}")
        self.grad_accum = global_batch // (world * micro_batch)
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        """Window order of ``epoch`` (cached: consecutive steps stay in the same epoch)."""
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perm_epoch = epoch
        return self._perm

    def sample_windows(self, samples: np.ndarray) -> np.ndarray:
        """Window indices of global sample indices ``samples``."""
        out = np.empty(len(samples), dtype=np.int64)
        for k, i in enumerate(samples):
            epoch, pos = divmod(int(i), self.n_windows)
            out[k] = self.permutation(epoch)[pos]
        return out

    def rank_samples(self, step: int) -> np.ndarray:
        """Global sample indices this rank trains on at ``step`` (0-based), ``(grad_accum, micro_batch)``."""
        per_rank = self.global_batch // self.world
        first = step * self.global_batch + self.rank * per_rank
        return np.arange(first, first + per_rank, dtype=np.int64).reshape(self.grad_accum, self.micro_batch)

    def micro_batches(self, step: int) -> list[np.ndarray]:
        """``grad_accum`` int64 arrays of shape ``(micro_batch, seq_len + 1)`` for ``step``."""
        span = self.seq_len + 1
        return [np.stack([self.stream.window(int(w) * self.seq_len, span) for w in self.sample_windows(rows)])
                for rows in self.rank_samples(step)]

    def epochs_done(self, step: int) -> float:
        """Passes over the training windows completed after ``step`` steps (the mixer already
        repeats small sources; this counts repeats of the whole mixture on top)."""
        return step * self.global_batch / self.n_windows


def eval_windows(stream: TokenStream, seq_len: int, max_tokens: int) -> int:
    """How many leading non-overlapping windows of a validation stream one evaluation reads:
    the same fixed windows every time, so evaluations are comparable across steps and runs."""
    return max(0, min((len(stream) - 1) // seq_len, max_tokens // seq_len))
