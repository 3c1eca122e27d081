"""The output head and the cross-entropy in chunks of tokens: no ``(tokens, vocab)`` logits in memory.

Unfused, the head writes ``tokens x vocab`` logits in the compute dtype, the loss upcasts them to
fp32 and autograd keeps both plus the fp32 gradient: at micro-batch 8 x 2,048 tokens and a 32,000
vocabulary that is 16,384 x 32,000 x (2 + 4 + 4) B ~ 5.2 GB at the peak. Here each chunk's logits
are computed, reduced to its loss, turned into the gradient of the loss with respect to the chunk's
hidden states and the head weight (``softmax - onehot``), and freed; backward only scales the two
stored gradients. Peak extra memory: one chunk of fp32 logits (``CHUNK_BYTES``) plus an fp32
gradient of the head weight. The head is computed once, as unfused (no recomputation), so the
model FLOPs are unchanged. This is the Liger-Kernel "fused linear cross-entropy" scheme
(Hsu et al. 2024) in plain PyTorch ops.

Numerics: each logit is the same matmul in the same dtype as unfused, the log-sum-exp is fp32
(max-shifted, as ``torch.logsumexp``),
and the head-weight gradient is accumulated over chunks in fp32; equal to the unfused loss and
gradients to fp32 rounding (tests/test_train_throughput.py).
"""

from __future__ import annotations

import torch

CHUNK_BYTES = 256 * 2**20  # fp32 logits per chunk: large GEMMs, a small, fixed memory peak


def chunk_tokens(vocab_size: int) -> int:
    """Tokens per chunk: ``CHUNK_BYTES`` of fp32 logits, at least 256 rows (2,097 at vocab 32,000)."""
    return max(256, CHUNK_BYTES // (4 * vocab_size))


def _chunk(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(softmax, summed loss)`` of one chunk: fp32 logits turned into probabilities in place (a
    log-sum-exp by hand, so that no second ``(chunk, vocab)`` temporary exists)."""
    logits = (h @ weight.t()).float()
    target = logits.gather(1, targets[:, None]).squeeze(1)
    top = logits.amax(dim=-1, keepdim=True)
    probs = logits.sub_(top).exp_()
    total = probs.sum(dim=-1, keepdim=True)
    loss = (total.log() + top).squeeze(1) - target  # log-sum-exp - target logit
    return probs.div_(total), loss.sum()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # noqa: ANN001
                chunk: int) -> torch.Tensor:
        n = h.shape[0]
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, n, chunk):
            hc, tc = h[start:start + chunk], targets[start:start + chunk]
            probs, loss = _chunk(hc, weight, tc)
            total += loss
            # d(sum of losses)/d(logits) = softmax - onehot, built in place of the logits
            probs[torch.arange(len(tc), device=probs.device), tc] -= 1.0
            g = probs.to(h.dtype)
            grad_h[start:start + chunk] = g @ weight.to(h.dtype)
            if hc.dtype == grad_w.dtype:
                torch.addmm(grad_w, g.t(), hc, out=grad_w)  # fp32: accumulate in place, no temporary
            else:
                grad_w += g.t() @ hc  # bf16 product, fp32 sum over chunks
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n, ctx.weight_dtype = n, weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: ANN205
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        return (grad_h * scale).to(grad_h.dtype), (grad_w * scale).to(ctx.weight_dtype), None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int | None = None) -> torch.Tensor:
    """Mean cross-entropy (nats) of ``softmax(h @ weight.T)`` against ``targets``.

    ``h``: ``(tokens, d_model)`` hidden states; ``weight``: ``(vocab, d_model)`` head;
    ``targets``: ``(tokens,)`` ids. ``chunk``: tokens per chunk (default :func:`chunk_tokens`)."""
    chunk = chunk or chunk_tokens(weight.shape[0])
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, targets, chunk)
    total = sum(_chunk(h[s:s + chunk], weight, targets[s:s + chunk])[1] for s in range(0, h.shape[0], chunk))
    return total / h.shape[0]
