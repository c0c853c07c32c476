"""The allocator setting the commands make: freed tensor memory is reused, not faulted in again from the kernel."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

# Five forward and backward passes of an analysis transform's first layers (the shapes of mbt2018-mean-small's g_a on
# two 128 x 128 crops), after a first one; prints whether the setting applied and the page faults the five took.
STEPS = textwrap.dedent(
    """
    import resource, sys, torch
    from mocodec.utils.memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 64, 5, stride=2, padding=2), torch.nn.ReLU()]
    for _ in range(3):
        layers += [torch.nn.Conv2d(64, 64, 5, padding=2), torch.nn.ReLU()]
    g_a = torch.nn.Sequential(*layers)
    x = torch.rand(2, 3, 128, 128)
    def step():
        g_a(x).square().mean().backward()
    step()  # the first step faults its memory in, either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", STEPS, mode], capture_output=True, text=True, check=True)
    applied, faults = done.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (mallopt); elsewhere it is a no-op")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    applied, kept = _faults("keep")
    _, default = _faults("default")
    assert applied == "True"
    assert kept * 4 < default, (kept, default)
