"""The device group's CPU memory retention (glibc malloc), checked in fresh processes."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Allocates and frees a 256 MiB tensor, then prints the resident memory that stays (MiB).
SCRIPT = """
import sys, torch
from pinn_exp.device import DeviceSpec
from pinn_exp.device import retain_cpu_memory
if sys.argv[1] == "1":
    assert retain_cpu_memory()
DeviceSpec("cpu", retain_cpu_memory=sys.argv[1] == "1").apply()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss()
x = torch.ones(64 * 2**20)
del x
print(rss() - before)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc"
)
def test_retained_memory_stays_in_the_heap_and_the_default_returns_it():
    def kept(flag: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1])

    assert kept("1") > 200  # the freed 256 MiB block stays mapped, ready for the next step
    assert kept("0") < 50  # glibc unmaps a block this large as soon as it is freed


def test_retention_changes_nothing_off_linux(monkeypatch):
    from pinn_exp import device

    monkeypatch.setattr(device.platform, "system", lambda: "Darwin")
    assert device.retain_cpu_memory() is False
