"""The device layer decides from what it probes: a Mac, an NVIDIA box with a CPU-only torch,
an AMD box with ROCm and a machine without a GPU are each simulated here with a Probe, and
this machine's real probe runs on its CPU."""

import pytest
import torch

from characterforge_addon.backend.engine import device
from characterforge_addon.core.errors import UserError
from characterforge_addon.core.setup.gpus import GPU

GIB = 2**30
RTX = GPU("nvidia", "NVIDIA GeForce RTX 4070", "nvidia-smi", "566.36", 12282)


def test_apple_silicon_runs_on_mps_in_float16_with_its_own_memory_modes():
    mac = device.Probe("2.14.1", available=("mps", "cpu"), names={"mps": "Apple arm64 GPU"},
                       memory={"mps": (20 * GIB, 24 * GIB)}, system="Darwin", machine="arm64",
                       gpus=(GPU("apple", "Apple Silicon (arm64)", "platform"),))
    chosen = device.choose(mac, "bfloat16")
    assert (chosen.kind, chosen.dtype, chosen.build, chosen.attention_slicing) == ("mps", "float16", "MPS", True)
    assert device.memory_mode("auto", chosen) == "gpu"
    assert device.memory_mode("sequential_offload", chosen) == "gpu"  # offloading saves nothing in shared memory
    assert device.lighter("gpu", "mps") == "gpu"
    assert device.findings(mac) == []
    big = device.Probe("2.14.1", available=("mps", "cpu"), memory={"mps": (90 * GIB, 96 * GIB)}, system="Darwin",
                       machine="arm64")
    assert not device.choose(big).attention_slicing


def test_an_nvidia_gpu_with_a_cpu_torch_is_a_missing_finding_with_the_fix():
    box = device.Probe("2.14.1+cpu", available=("cpu",), memory={"cpu": (30 * GIB, 32 * GIB)}, system="Windows",
                       gpus=(RTX,))
    chosen = device.choose(box)
    assert (chosen.kind, chosen.dtype, chosen.build) == ("cpu", "float32", "CPU only (+cpu)")
    [finding] = device.findings(box)
    assert finding["level"] == "MISSING" and "RTX 4070" in finding["message"] and "+cpu" in finding["message"]
    assert "--gpu nvidia" in finding["fix"] and "Set Up Backend" in finding["fix"]


def test_a_cuda_torch_that_sees_no_gpu_points_at_the_driver():
    box = device.Probe("2.14.1+cu130", cuda_build="13.0", available=("cpu",), gpus=(RTX,))
    assert any("driver" in f["fix"] for f in device.findings(box))


def test_amd_on_linux_with_rocm_runs_as_cuda_and_without_it_is_missing():
    rocm = device.Probe("2.14.1+rocm6.4", hip_build="6.4.1", available=("cuda", "cpu"),
                        names={"cuda": "AMD Radeon RX 7900 XTX"}, memory={"cuda": (22 * GIB, 24 * GIB)},
                        gpus=(GPU("amd", "AMD Radeon RX 7900 XTX", "rocminfo"),))
    chosen = device.choose(rocm, "float16")
    assert (chosen.kind, chosen.build, chosen.dtype) == ("cuda", "ROCm 6.4.1", "float16")
    assert device.memory_mode("auto", chosen) == "gpu" and device.findings(rocm) == []
    plain = device.Probe("2.14.1+cpu", gpus=rocm.gpus)
    assert device.findings(plain)[0]["level"] == "MISSING" and "--gpu amd" in device.findings(plain)[0]["fix"]
    windows = device.Probe("2.14.1+cpu", system="Windows", gpus=rocm.gpus)
    assert device.findings(windows)[0]["level"] == "note" and "Linux only" in device.findings(windows)[0]["message"]


def test_memory_mode_follows_free_memory_and_steps_down_on_cuda():
    for free_gb, mode in ((40, "gpu"), (12, "model_offload"), (6, "group_offload")):
        box = device.Probe("2.14.1", cuda_build="12.8", available=("cuda", "cpu"), memory={"cuda": (free_gb * GIB, 80 * GIB)})
        assert device.memory_mode("auto", device.choose(box), (16, 8.8)) == mode
    assert [device.lighter(m, "cuda") for m in device.MODES["cuda"]] == ["model_offload", "group_offload",
                                                                          "sequential_offload", "sequential_offload"]


def test_float8_weights_are_refused_on_apple_silicon_only():
    mac = device.choose(device.Probe("2.14.1", available=("mps", "cpu"), system="Darwin", machine="arm64"))
    with pytest.raises(UserError, match="MPS has no float8"):
        device.weight_storage("fp8", mac)
    assert device.weight_storage("fp8", device.choose(device.Probe("2.14.1+cpu"))) == "fp8"


def test_no_gpu_at_all_is_said_and_the_cpu_is_used():
    p = device.Probe("2.14.1+cpu")
    assert device.choose(p, "float16").dtype == "float32"
    assert device.findings(p)[0]["level"] == "note"


def test_out_of_memory_errors_of_every_kind_are_recognised():
    assert device.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert device.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17 GB)"))
    assert not device.is_out_of_memory(RuntimeError("expected query, key and value to have the same dtype"))


def test_this_machine_is_probed_for_real_and_seeds_give_the_same_noise():
    p = device.probe()
    assert "cpu" in p.available and p.memory["cpu"][1] > 0
    chosen = device.choose(p)
    assert chosen.kind == "cpu" and chosen.report()["memory_modes"] == ["cpu"]
    a, b = device.generators(7, 2), device.generators(7, 2)
    assert torch.equal(torch.randn(3, generator=a[1]), torch.randn(3, generator=b[1]))
    assert not torch.equal(torch.randn(3, generator=device.generators(7, 1)[0]), torch.randn(3, generator=a[1]))


def test_the_cpu_runs_half_precision_profiles_in_bfloat16_only_where_it_computes_it_natively():
    native = device.Probe("2.14.1+cpu", cpu_bf16=True)
    assert device.choose(native, "float16").dtype == "bfloat16"
    assert device.choose(native, "float32").dtype == "float32"  # a float32 profile (the tiny ones) stays so
    assert device.choose(device.Probe("2.14.1+cpu"), "bfloat16").dtype == "float32"  # emulated: slower than float32


def test_only_cuda_copies_the_next_layer_on_a_side_stream():
    assert device.side_streams("cuda") and not any(device.side_streams(k) for k in ("xpu", "mps", "cpu"))
