"""The machine a benchmark ran on, in words, for the header every benchmark prints."""

import platform


def cpu_name():
    """The CPU's model name from `/proc/cpuinfo` (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown CPU"
