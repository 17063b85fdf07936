"""The machine a benchmark ran on, in words, for the header every benchmark prints."""

import platform
import time


def cpu_name():
    """The CPU's model name from `/proc/cpuinfo` (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown CPU"


def matmul_gflops():
    """Float32 2048^3 matmul rate of this machine, with NumPy (the ceiling's denominator)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9
