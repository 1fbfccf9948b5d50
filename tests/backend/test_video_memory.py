"""Memory on artists' cards for the video families: what each card size gets (decided in
device.py from hand-made devices), the text encoder leaving the GPU or encoding on the CPU, and
the prompt encoded once a shot."""

import pytest

from characterforge_addon.backend import families
from characterforge_addon.backend.engine import device
from characterforge_addon.backend.models import models, profiles


def card(gb):
    return device.Device("cuda", f"{gb} GB card", "bfloat16", "CUDA", gb - 1.0, float(gb))


@pytest.mark.parametrize("family, weights, expected", [
    ("wan_vace", "native", {"8 GB": "group_offload", "12 GB": "gpu_text_encoder_cpu", "16 GB": "gpu_text_encoder_cpu",
                            "24 GB": "gpu"}),
    ("wan_vace", "fp8", {"8 GB": "gpu_text_encoder_cpu", "12 GB": "gpu_text_encoder_cpu", "16 GB": "gpu",
                         "24 GB": "gpu"}),
    ("wan_animate", "native", {"8 GB": "group_offload", "12 GB": "group_offload", "16 GB": "group_offload",
                               "24 GB": "group_offload"}),
])
def test_what_each_card_size_gets(family, weights, expected):
    need = families.memory_need(families.FAMILIES[family], weights)
    assert device.video_card_modes(need, "bfloat16") == expected


def test_the_14b_model_holds_whole_from_48_gb_in_fp8_and_the_doctor_prints_the_cards(tmp_path):
    animate = families.FAMILIES["wan_animate"]
    assert device.video_memory("auto", card(48), families.memory_need(animate, "fp8")) == ("gpu", "device")
    assert device.video_memory("auto", card(48), families.memory_need(animate))[0] == "group_offload"
    report = models.doctor(profiles.load_profile("wan-vace"), str(tmp_path))
    assert report["cards"]["native"]["24 GB"] == "gpu" and report["animation"]["window"] == 81
    text = models.format_doctor(report)
    assert "16 GB card: all on the GPU but the text encoder (it encodes on the CPU, once a shot)" in text
    assert "[19 GB, Apache-2.0]" in text or "Wan-AI/Wan2.1-VACE-1.3B-diffusers" in text


def test_the_text_encoder_goes_where_the_plan_says():
    vace = families.memory_need(families.FAMILIES["wan_vace"])
    assert device.video_memory("gpu", card(12), vace) == ("gpu", "cpu")  # asked for, but it cannot hold both
    assert device.video_memory("gpu", card(24), vace) == ("gpu", "device")
    assert device.text_encoder_leaves("gpu", "device") and not device.text_encoder_leaves("gpu", "cpu")
    assert not device.text_encoder_leaves("model_offload", "device")  # the hooks move it off themselves
    assert device.video_vae_tiling("group_offload") and not device.video_vae_tiling("gpu")
    cpu = device.Device("cpu", "CPU", "float32", "CPU only", 20.0, 24.0)
    assert device.video_memory("auto", cpu, vace) == ("cpu", "device")


def test_the_prompt_is_encoded_once_a_shot(models_dir):
    """Two segments with the same prompt: the text encoder runs once (its embeddings are kept)."""
    import numpy as np
    from PIL import Image

    from characterforge_addon.backend.jobs.animation import Clip
    from characterforge_addon.backend.engine.pipelines import Engine
    engine = Engine(profiles.load_profile("tiny-wan-vace"), models_dir)
    pipe = engine.base()
    calls = []
    forward = pipe.text_encoder.forward
    pipe.text_encoder.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    spec = {"prompt": "a knight", "negative_prompt": "", "guidance": 5.0, "steps": 1, "seed": 0, "width": 64,
            "height": 64, "control": "openpose", "mode": "animate", "strength": 1.0}
    frame = {"openpose": Image.fromarray(np.zeros((64, 64, 3), np.uint8))}
    import threading
    for _ in range(2):
        made = engine.family.animate(engine, Clip(spec, [frame] * 5), lambda *a: None, threading.Event())
        assert len(made) == 5 and made[0].shape == (64, 64, 3)
    assert len(calls) == 2  # prompt and negative, once


def test_the_gpu_benchmark_script_runs_on_the_cpu_as_a_check(tmp_path):
    """blender_scripts/bench/bench_gpu_video.py --cpu: the same path (weights saved, loaded through a
    profile naming the folder, a segment in each plan) with the tiny shapes."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, os.path.join(root, "blender_scripts", "bench", "bench_gpu_video.py"), "--cpu",
                          "--models", str(tmp_path), "--json", str(tmp_path / "figures.json")], cwd=root,
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads((tmp_path / "figures.json").read_text())["figures"]
    assert figures[0]["memory_mode"] == "cpu" and figures[0]["s_per_video_second"] > 0
    assert "per second of video at 30 steps" in run.stdout
