"""Throughput, MFU and the metrics sinks (JSON lines + TensorBoard), rank 0 only.

MFU (model FLOPs utilization, PaLM; Chowdhery et al. 2022, App. B) = achieved model
FLOP/s per device / the device's dense bf16 peak (``train/gpus.py``). Model FLOPs per token
come from ``core.model_config.flops_per_token`` (block matmuls, attention and the output head)
and exclude activation recomputation, so turning on activation checkpointing lowers MFU, as it
should.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from core.workdir import read_metrics  # noqa: F401  (re-exported: the trainer's log, read)
from train.gpus import device_for_name


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """Dense bf16 peak of ``device`` in FLOP/s from ``train/gpus.py``'s table (matched by the CUDA
    device name: "H200 NVL" is 835 TFLOP/s, an "H200" 989); None for CPUs and unknown GPUs (then no MFU)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    gpu = device_for_name(torch.cuda.get_device_name(device))
    return gpu.peak_flops.get("bf16") if gpu else None


def mfu(tokens_per_s_per_device: float, flops_per_token: int, peak: float | None) -> float | None:
    return tokens_per_s_per_device * flops_per_token / peak if peak else None


def bits_per_byte(loss_nats: float, bytes_per_token: float | None) -> float | None:
    """Loss per byte of text, in bits: ``loss / ln 2 * tokens / bytes`` (BloombergGPT reports it,
    because unlike perplexity it does not depend on the tokenizer)."""
    if not bytes_per_token or bytes_per_token <= 0:
        return None
    return loss_nats / math.log(2) / bytes_per_token


class ThroughputWindow:
    """The steps since the last ``train`` record and the wall (``t``) and CPU (``cpu``) clocks at its start;
    ``paused()`` keeps evaluation and checkpoints out of both clocks (the steps already in the window still
    count), so tokens/s and the step time are the steps' own."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t, self.cpu, self.steps = time.perf_counter(), time.process_time(), 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.t += time.perf_counter() - t
            self.cpu += time.process_time() - cpu


class MetricsLogger:
    """Appends records to ``OUT/metrics.jsonl`` and mirrors numbers to TensorBoard (rank 0)."""

    def __init__(self, out_dir: str | os.PathLike, enabled: bool, tensorboard: bool, purge_step: int | None = None):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"), purge_step=purge_step)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.tb is not None and "step" in record:
            prefix = record.get("kind", "train") + ("/" + record["split"] if "split" in record else "")
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    self.tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# read_metrics (above): the one reader of a metrics.jsonl, in core/workdir.py (a torn last line is skipped)
