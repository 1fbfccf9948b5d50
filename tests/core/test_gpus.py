"""GPU detection asks the system's own tools: fake `nvidia-smi` and `rocminfo` programs on
PATH stand in for an NVIDIA box, an AMD box, a broken driver and a machine with neither."""

import os
import stat

import pytest

from characterforge_addon.core.setup.gpus import detect_gpus, main_vendor

ROCMINFO = """ROCk module is loaded
*******
Agent 1
*******
  Name:                    AMD Ryzen 9 7950X 16-Core Processor
  Marketing Name:          AMD Ryzen 9 7950X 16-Core Processor
*******
Agent 2
*******
  Name:                    gfx1100
  Marketing Name:          AMD Radeon RX 7900 XTX
"""


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), "/usr/bin", "/bin"]))  # sh needs cat

    def add(name, output="", code=0):
        program = tmp_path / name
        program.write_text(f"#!/bin/sh\ncat <<'END'\n{output}END\nexit {code}\n")
        program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return add


def test_an_nvidia_card_with_its_driver(path_with):
    path_with("nvidia-smi", "NVIDIA GeForce RTX 4090, 24564, 580.95.05\n")
    [gpu] = detect_gpus("Linux")
    assert (gpu.vendor, gpu.name, gpu.driver, gpu.memory_mb, gpu.source) == (
        "nvidia", "NVIDIA GeForce RTX 4090", "580.95.05", 24564, "nvidia-smi")
    assert main_vendor([gpu]) == "nvidia"


def test_an_amd_card_from_rocminfo_and_the_cpu_agent_left_out(path_with):
    path_with("rocminfo", ROCMINFO)
    [gpu] = detect_gpus("Linux")
    assert (gpu.vendor, gpu.name) == ("amd", "AMD Radeon RX 7900 XTX")


def test_nvidia_wins_over_amd_when_both_are_there(path_with):
    path_with("nvidia-smi", "NVIDIA RTX A6000, 49140, 570.86.10\n")
    path_with("rocminfo", ROCMINFO)
    assert main_vendor(detect_gpus("Linux")) == "nvidia"


def test_a_failing_nvidia_smi_is_no_gpu(path_with):
    path_with("nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9)
    assert detect_gpus("Linux") == [] and main_vendor([]) == "none"


@pytest.mark.skipif(os.path.isdir("/opt/rocm") or os.path.exists("/usr/bin/nvidia-smi"), reason="this machine has a GPU")
def test_no_tools_no_gpu(path_with):
    assert detect_gpus("Linux") == []


def test_windows_controllers_catch_a_card_without_its_driver(path_with):
    path_with("powershell", "NVIDIA GeForce RTX 3060\nIntel(R) UHD Graphics 770\n")
    [gpu] = detect_gpus("Windows")
    assert (gpu.vendor, gpu.source) == ("nvidia", "Windows video controllers")


def test_macs(path_with):
    assert main_vendor(detect_gpus("Darwin", "arm64")) == "apple"
    assert detect_gpus("Darwin", "x86_64") == []
