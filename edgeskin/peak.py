"""This CPU's measured peak for matrix multiply: the physical floor a latency figure is read against.

A short micro-benchmark at the benchmark's own thread count: PyTorch's fp32 matmul (oneDNN/MKL, the
best fp32 kernels on the machine) and int8 matmul (torch._int_mm, int8 x int8 -> int32, which
uses AMX or VNNI where the CPU has them), each on 1024x1024 matrices for a fraction of a second.
The CPU's vector and matrix extensions are read from its flags, so a reader knows which units the
peak came from (an artifact's runtime may use fewer: XNNPACK does not use AMX).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

SIZE = 1024
SECONDS = 0.3  # per measurement
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve")


@dataclass(frozen=True)
class Peak:
    threads: int
    fp32_gflops: float
    int8_gops: float | None  # None: no int8 matmul in this PyTorch build
    flags: tuple[str, ...]  # the CPU's vector/matrix extensions among FLAGS

    def to_dict(self) -> dict:
        return asdict(self)

    def for_compute(self, compute: str) -> float | None:
        """The peak an artifact's matmuls are compared with ("fp32" or "int8"); None: no comparison."""
        return {"fp32": self.fp32_gflops, "int8": self.int8_gops}.get(compute)

    def sentence(self) -> str:
        int8 = f"int8 {self.int8_gops:.0f} GOP/s" if self.int8_gops else "int8 n/a"
        return (f"this CPU's measured matmul peak at {self.threads} threads ({SIZE}^3, PyTorch): fp32 {self.fp32_gflops:.0f} "
                f"GFLOP/s, {int8}; CPU flags: {', '.join(self.flags) or 'none known'}")


def cpu_flags() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    words = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            words |= set(line.split(":", 1)[1].split())
    return tuple(flag for flag in FLAGS if flag in words)


def _rate(run, operations: int) -> float:
    run()
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < SECONDS:
        run()
        count += 1
    return operations * count / (time.perf_counter() - began) / 1e9


def measure_peak(threads: int) -> Peak:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(SIZE, SIZE, generator=generator) for _ in range(2))
        operations = 2 * SIZE**3
        fp32 = _rate(lambda: torch.mm(a, b), operations)
        qa, qb = (torch.randint(-128, 127, (SIZE, SIZE), dtype=torch.int8, generator=generator) for _ in range(2))
        try:
            int8 = _rate(lambda: torch._int_mm(qa, qb), operations)
        except (RuntimeError, AttributeError):  # a build without the CPU int8 kernel
            int8 = None
    finally:
        torch.set_num_threads(previous)
    return Peak(threads, fp32, int8, cpu_flags())
