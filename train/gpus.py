"""A small table of datacenter GPUs for the planner: memory and dense peak FLOP/s.

Units, said once and used everywhere:
- ``memory_bytes`` is the total the driver reports (``nvidia-smi`` "MiB" column x 2**20), not the
  marketing number: an "A100 40GB" has 40960 MiB = 42.9 GB (1e9 B) = 40.0 GiB (2**30 B), an
  "H100 80GB" 81559 MiB = 85.5 GB = 79.6 GiB, an "H200 141GB" 143771 MiB = 150.8 GB = 140.4 GiB.
  What a process can allocate is a little less (CUDA context, allocator), which the planner
  covers with a headroom fraction.
- ``peak_flops`` are *dense* (no 2:4 sparsity) tensor-core peaks in FLOP/s for SXM parts, from
  the NVIDIA datasheets: V100 (Volta whitepaper, 2017), A100 (A100 datasheet, 2020; A100
  whitepaper Table 1), H100/H200 (H100 SXM5 and H200 SXM datasheets, 2023-2024; the
  datasheets print sparse numbers, we halve them). ``None`` means the GPU has no such mode.
  ``"fp32"`` is the plain (CUDA-core) fp32 peak; ``"tf32"`` the tensor-core TF32 peak.
  V100 has no bf16; its fp16 tensor-core peak is listed under ``"bf16"`` with that caveat.
  PCIe and NVL cards run the same dies at lower clocks and power: their own datasheets' numbers.

This is the one table of peaks: the trainer's MFU (``train/metrics.py``) finds its GPU here by the
name CUDA reports (``device_for_name``), the planner by key (``get_gpu``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 2**20
GB = 1e9  # decimal gigabyte: what the ZeRO paper and this planner print
GIB = 2**30  # binary gibibyte: what GPU "GB" marketing and nvidia-smi MiB approximate


@dataclass(frozen=True)
class GPU:
    """One accelerator: ``memory_bytes`` in bytes, ``peak_flops[dtype]`` in FLOP/s (dense)."""

    name: str
    memory_bytes: float
    peak_flops: dict[str, float | None] = field(default_factory=dict)
    note: str = ""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for matmuls in ``dtype`` (fp32, tf32, bf16, fp8)."""
        value = self.peak_flops.get(dtype)
        if value is None:
            raise ValueError(f"{self.name} has no {dtype} peak in the table; pass --gpu-tflops")
        return value


T = 1e12
GPUS: dict[str, GPU] = {
    # Tesla V100 SXM2: 15.7 TFLOP/s fp32, 125 TFLOP/s fp16 tensor cores (no bf16, no tf32).
    "v100-16gb": GPU(
        "v100-16gb",
        16160 * MIB,
        {"fp32": 15.7 * T, "tf32": None, "bf16": 125 * T, "fp8": None},
        "no bf16: the bf16 peak is the fp16 tensor-core peak",
    ),
    "v100-32gb": GPU(
        "v100-32gb",
        32510 * MIB,
        {"fp32": 15.7 * T, "tf32": None, "bf16": 125 * T, "fp8": None},
        "no bf16: the bf16 peak is the fp16 tensor-core peak",
    ),
    # A100 SXM4: 19.5 fp32, 156 tf32, 312 bf16 dense; no fp8.
    "a100-40gb": GPU(
        "a100-40gb", 40960 * MIB, {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp8": None}
    ),
    "a100-80gb": GPU(
        "a100-80gb", 81920 * MIB, {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp8": None}
    ),
    # H100 SXM5: 67 fp32, 494.7 tf32, 989.4 bf16, 1978.9 fp8 dense (datasheet /2 for sparsity).
    "h100-80gb": GPU(
        "h100-80gb", 81559 * MIB, {"fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp8": 1978.9 * T}
    ),
    # H100 PCIe (80 GB): 51 fp32, 756 tf32 / 1,513 bf16 / 3,026 fp8 with sparsity, halved.
    "h100-pcie": GPU(
        "h100-pcie", 81559 * MIB, {"fp32": 51 * T, "tf32": 378 * T, "bf16": 756.5 * T, "fp8": 1513 * T}
    ),
    # H100 NVL (94 GB): 60 fp32, 835 tf32 / 1,671 bf16 / 3,341 fp8 with sparsity, halved.
    "h100-nvl": GPU(
        "h100-nvl", 95830 * MIB, {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp8": 1670.5 * T}
    ),
    # H200 SXM: the H100 compute die with 141 GB HBM3e; same dense peaks.
    "h200-141gb": GPU(
        "h200-141gb", 143771 * MIB, {"fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp8": 1978.9 * T}
    ),
    # H200 NVL (141 GB, 600 W PCIe card): 60 fp32, 835 tf32 / 1,671 bf16 / 3,341 fp8 with sparsity, halved.
    "h200-nvl": GPU(
        "h200-nvl", 143771 * MIB, {"fp32": 60 * T, "tf32": 417.5 * T, "bf16": 835.5 * T, "fp8": 1670.5 * T}
    ),
}
# ``torch.cuda.get_device_name`` substrings -> table key, most specific first ("NVIDIA H200 NVL"
# must not match "H200", which is the SXM part).
DEVICE_NAMES = (
    ("H200 NVL", "h200-nvl"),
    ("H200", "h200-141gb"),
    ("H100 NVL", "h100-nvl"),
    ("H100 PCIe", "h100-pcie"),
    ("H100", "h100-80gb"),
    ("A100", "a100-80gb"),  # 40 and 80 GB parts have the same peaks
    ("V100", "v100-32gb"),
)
ALIASES = {
    "a100": "a100-80gb",
    "h100": "h100-80gb",
    "h200": "h200-141gb",
    "v100": "v100-32gb",
    "h200-141": "h200-141gb",
}


def get_gpu(
    name: str, memory_gb: float | None = None, tflops: float | None = None, dtype: str = "bf16"
) -> GPU:
    """Look ``name`` up (case-insensitive, a few aliases) and apply custom overrides.

    ``name="custom"`` needs both ``memory_gb`` (decimal GB, 1e9 B) and ``tflops`` (dense TFLOP/s in
    ``dtype``). For a table GPU the overrides replace its memory or its ``dtype`` peak.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key == "custom":
        if memory_gb is None or tflops is None:
            raise ValueError("--gpu custom needs --gpu-mem-gb and --gpu-tflops")
        return GPU("custom", memory_gb * GB, {dtype: tflops * T})
    if key not in GPUS:
        raise ValueError(f"unknown GPU {name!r}; known: {sorted(GPUS)} or 'custom'")
    gpu = GPUS[key]
    if memory_gb is None and tflops is None:
        return gpu
    peaks = dict(gpu.peak_flops)
    if tflops is not None:
        peaks[dtype] = tflops * T
    return GPU(
        gpu.name, memory_gb * GB if memory_gb is not None else gpu.memory_bytes, peaks, "custom overrides"
    )


def device_for_name(name: str) -> GPU | None:
    """The table's GPU for a CUDA device name (``"NVIDIA H100 80GB HBM3"``), or None if unknown."""
    for key, table_key in DEVICE_NAMES:
        if key.lower() in name.lower():
            return GPUS[table_key]
    return None
