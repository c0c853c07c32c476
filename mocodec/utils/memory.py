"""Keep freed tensor memory in the process instead of handing it back to the kernel at every free.

glibc's ``malloc`` maps every block above its mmap threshold (128 KiB, raised adaptively only
as far as blocks already freed) straight from the kernel and unmaps it when it is freed. Tensors
are such blocks: a training step's activations (9.4 MB for 4 x 64 x 96 x 96 floats) and an
evaluation's decoded images are allocated and freed again at every step or image, and each time
the kernel zero-fills every page of them on first touch. Served from the heap, they are reused.
Measured (benchmarks/bench_allocator.py, BENCHMARKS.md) on the project's 2-core virtual machines: in a
fresh process a training step of mbt2018-mean-small page-faults 24,210 times without this and 462 with
it, and runs 13 % faster; an hours-old training run showed no difference (its allocator had settled).
"""

from __future__ import annotations

import ctypes
import platform

# mallopt(3) parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # free heap memory kept up to 1 GiB, not trimmed after every large free


def keep_freed_memory() -> bool:
    """Have glibc serve blocks up to 32 MiB from the heap and keep freed memory, for the rest of this process.

    A setting of the process's allocator (like its thread count), made by the commands that run
    long loops; memory already in use is unaffected. Returns whether it applied: False where the C
    library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


__all__ = ["keep_freed_memory"]
