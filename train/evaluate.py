"""Validation loss on the mixer's held-out splits (val_domain, val_general).

Each evaluation reads the same leading windows of each split (``train.eval_tokens``),
split round-robin over ranks; every rank runs the same number of forward passes (padded
with masked-out windows) because FSDP's forward is a collective.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mixtures.shards import TokenStream
from train.data import eval_windows


@torch.no_grad()
def evaluate_stream(model: torch.nn.Module, stream: TokenStream, seq_len: int, max_tokens: int, micro_batch: int,
                    device: torch.device, autocast) -> tuple[float, int]:  # noqa: ANN001
    """Mean next-token cross-entropy (nats) over the evaluated windows, and the number of tokens."""
    rank, world = dist.get_rank(), dist.get_world_size()
    n = eval_windows(stream, seq_len, max_tokens)
    per_round = micro_batch * world
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    for r in range(math.ceil(n / per_round)):
        idx = [r * per_round + rank * micro_batch + j for j in range(micro_batch)]
        valid = torch.tensor([i < n for i in idx], dtype=torch.float64, device=device)
        batch = np.stack([stream.window((i if i < n else 0) * seq_len, seq_len + 1) for i in idx])
        x = torch.from_numpy(batch).to(device)
        with autocast():
            logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="none")
        totals[0] += (loss.view(micro_batch, seq_len).double().sum(1) * valid).sum()
        totals[1] += valid.sum() * seq_len
    model.train(was_training)
    dist.all_reduce(totals)
    count = int(totals[1].item())
    return (totals[0].item() / count if count else float("nan")), count
