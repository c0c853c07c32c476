"""The arithmetic a codec codes with, and what a file written with float arithmetic records of it.

* ``exact`` (portable; the default of every codec that has it): the entropy-parameter networks
  run on integers and the CDF tables are derived in float64 (:mod:`mocodec.codecs.exact`), so a
  decoder derives the encoder's CDF rows and means on any machine, thread count and device.
* ``float``: CompressAI's coder as it is (float32 networks, the tables the entropy models hold),
  whose strings equal CompressAI's own. Its files decode only with the arithmetic that wrote
  them, so they record a fingerprint of it (:func:`float_fingerprint`: torch, CompressAI, the
  CPU and its kernels, or the GPU) and the thread count; a decoder elsewhere refuses them.

The two implementations are in :mod:`mocodec.codecs.entropy_parameters`; this module imports
neither torch's heavy parts nor CompressAI, so the container can read and check files cheaply.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from collections.abc import Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

EXACT, FLOAT = "exact", "float"
ARITHMETICS = (EXACT, FLOAT)


# --------------------------------------------------------------------------- what a float file records


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else the platform's word for it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def float_arithmetic_description(device: torch.device) -> str:
    """What decides a float network's last bits here, thread count aside (a file records that separately)."""
    parts = [f"torch {torch.__version__}", f"CompressAI {metadata.version('compressai')}"]
    if device.type == "cuda":
        parts += [torch.cuda.get_device_name(device), f"CUDA {torch.version.cuda}", f"cuDNN {torch.backends.cudnn.version()}"]
    else:
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "native"
        parts += [cpu_model(), f"ATen {torch.backends.cpu.get_cpu_capability()} kernels", f"oneDNN ISA {isa}"]
    return ", ".join(parts)


def float_fingerprint(device: torch.device) -> bytes:
    """4 bytes of the SHA-256 of :func:`float_arithmetic_description`: what a float file records of its writer."""
    return hashlib.sha256(float_arithmetic_description(device).encode()).digest()[:4]


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``threads`` (a float file's writer's), restored after."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


__all__ = ["ARITHMETICS", "EXACT", "FLOAT", "cpu_model", "float_arithmetic_description", "float_fingerprint", "torch_threads"]
