"""The one place that asks torch about the hardware: which device and dtype the backend runs
on, its memory, the memory modes that make sense there, out-of-memory errors, emptying
caches, generators. Decisions are made from a `Probe` (what torch and the system report), so
every platform's branch is tested on any machine by building the probe by hand.

Order: CUDA (NVIDIA; ROCm builds of torch report AMD cards as CUDA too, with
`torch.version.hip`), Apple's MPS, Intel's XPU, the CPU last.
"""

import platform
from dataclasses import dataclass, field

import torch

from ...core.errors import UserError
from ...core.setup.gpus import detect_gpus

# The memory modes each device can use, lightest last (the out-of-memory retry steps down
# this list). Offloading to the CPU saves nothing where memory is shared (Apple Silicon).
_OFFLOADING = ("gpu", "model_offload", "group_offload", "sequential_offload")
MODES = {"cuda": _OFFLOADING, "xpu": _OFFLOADING, "mps": ("gpu",), "cpu": ("cpu",)}
# How the denoiser's weights are stored: in the compute dtype, or in float8 and cast layer by
# layer as it runs (half its memory; pictures differ slightly). Apple's MPS has no float8.
WEIGHTS = ("native", "fp8")
GIB = 2**30
# Below this much unified memory diffusers advises attention slicing on Apple Silicon.
MPS_SLICING_BELOW = 64 * GIB
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class Probe:
    """What torch and the system report. `memory` maps a device kind to (free, total) bytes."""
    torch_version: str
    cuda_build: str | None = None      # torch.version.cuda
    hip_build: str | None = None       # torch.version.hip: a ROCm build
    available: tuple = ("cpu",)        # device kinds torch can run on
    names: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    system: str = "Linux"
    machine: str = "x86_64"
    gpus: tuple = ()                   # what the system shows (nvidia-smi, rocminfo, Apple Silicon), torch aside
    cpu_bf16: bool = False             # the CPU computes bfloat16 natively (AVX512-BF16, AMX): about 2.6x float32


@dataclass(frozen=True)
class Device:
    kind: str           # cuda | mps | xpu | cpu
    name: str
    dtype: str          # float16 | bfloat16 | float32
    build: str          # the torch build in words: "CUDA 12.8", "ROCm 6.4", "MPS", "CPU only"
    free_gb: float
    total_gb: float
    attention_slicing: bool = False

    @property
    def torch_dtype(self):
        return _DTYPES[self.dtype]

    def report(self):
        return {"device": self.kind, "name": self.name, "dtype": self.dtype, "torch_build": self.build,
                "free_gb": self.free_gb, "total_gb": self.total_gb, "memory_modes": list(MODES[self.kind])}


def probe():
    """A Probe of this machine."""
    import psutil
    available, names, memory = [], {}, {}
    if torch.cuda.is_available():
        available.append("cuda")
        names["cuda"] = torch.cuda.get_device_name(0)
        memory["cuda"] = torch.cuda.mem_get_info()
    if torch.backends.mps.is_available():
        available.append("mps")
        names["mps"] = f"Apple {platform.machine()} GPU (shared memory)"
        memory["mps"] = _mps_memory()
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        available.append("xpu")
        names["xpu"] = xpu.get_device_name(0)
        memory["xpu"] = xpu.mem_get_info() if hasattr(xpu, "mem_get_info") else (0, xpu.get_device_properties(0).total_memory)
    available.append("cpu")
    ram = psutil.virtual_memory()
    names["cpu"] = f"CPU ({platform.processor() or platform.machine()})"
    memory["cpu"] = (ram.available, ram.total)
    cpu_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return Probe(torch.__version__, torch.version.cuda, getattr(torch.version, "hip", None), tuple(available), names,
                 memory, platform.system(), platform.machine(), tuple(detect_gpus()), bool(cpu_bf16))


def _mps_memory():
    import psutil
    total = torch.mps.recommended_max_memory() or psutil.virtual_memory().total
    return max(0, total - torch.mps.driver_allocated_memory()), total


def build_label(p):
    if p.hip_build:
        return f"ROCm {p.hip_build}"
    if p.cuda_build:
        return f"CUDA {p.cuda_build}"
    if "mps" in p.available or (p.system == "Darwin" and p.machine == "arm64"):
        return "MPS"
    if "xpu" in p.available:
        return "XPU"
    return "CPU only" + (" (+cpu)" if p.torch_version.endswith("+cpu") else "")


def choose(p, gpu_dtype="float16", want=None):
    """The Device to run on: `want` (a kind) if torch offers it, else the first of CUDA, MPS,
    XPU, CPU. GPUs take the profile's dtype (float16 on Apple Silicon, whose bfloat16 is
    slow); the CPU bfloat16 for a half-precision profile where it computes bfloat16 natively,
    else float32 (float16 on a CPU is slow, and emulated bfloat16 slower than float32)."""
    kinds = [k for k in ("cuda", "mps", "xpu") if k in p.available] + ["cpu"]
    kind = want if want in kinds else kinds[0]
    if kind == "cpu":
        dtype = "bfloat16" if p.cpu_bf16 and gpu_dtype in ("float16", "bfloat16") else "float32"
    else:
        dtype = "float16" if kind == "mps" and gpu_dtype == "bfloat16" else gpu_dtype
    free, total = p.memory.get(kind, (0, 0))
    slicing = kind == "mps" and total < MPS_SLICING_BELOW
    return Device(kind, p.names.get(kind, kind.upper()), dtype, build_label(p), round(free / GIB, 2),
                  round(total / GIB, 2), slicing)


def memory_mode(requested, device, need=(16, 8.8)):
    """The memory mode for `device`: the one asked for when it makes sense there (else the
    device's own), or for "auto" the fastest that fits the free memory. `need`: GB the family
    takes with every model on the GPU, and at the peak of model offloading (the denoiser and
    what runs with it); below both, group offloading keeps a layer or two on the GPU."""
    modes = MODES[device.kind]
    if requested in modes:
        return requested
    if requested != "auto" or len(modes) == 1:
        return modes[0]
    everything, offloaded = need
    if device.free_gb >= everything:
        return "gpu"
    return "model_offload" if device.free_gb >= offloaded else "group_offload"


def side_streams(kind):
    """Whether group offload can copy the next layer on a side stream while one computes: CUDA
    streams (ROCm builds too, which torch reports as CUDA); elsewhere the copies wait their turn."""
    return kind == "cuda"


def weight_storage(requested, device):
    """The weight storage to use on `device`, or UserError when it cannot hold float8."""
    if requested == "fp8" and device.kind == "mps":
        raise UserError("--weights fp8: Apple's MPS has no float8 type; start the backend with --weights native")
    return requested


def card_modes(needs, dtype, cards_gb=(12, 16, 24)):
    """{"12 GB": memory mode, ...}: what the automatic choice picks on an NVIDIA card of each size
    (about 1 GB taken by the desktop) given `needs` (see `memory_mode`)."""
    return {f"{gb} GB": memory_mode("auto", Device("cuda", f"{gb} GB card", dtype, "CUDA", gb - 1.0, float(gb)), needs)
            for gb in cards_gb}


def video_memory(requested, device, need):
    """(memory mode, where the text encoder encodes: "device" or "cpu") for a video family on
    `device`. `need`: GB with every model on the GPU (the text encoder leaving it once the prompt
    is encoded, its embeddings kept for the shot's segments); GB without the text encoder on
    the GPU at all (it encodes on the CPU, once a shot: Wan's own advice for consumer cards);
    GB at the peak of model offloading. Below all three, layers are streamed (group offload)."""
    modes = MODES[device.kind]
    everything, without_text_encoder, offloaded = need
    if len(modes) == 1:
        return modes[0], "device"
    if requested in modes:
        keep = requested != "gpu" or device.free_gb >= everything
        return requested, "device" if keep else "cpu"
    if requested != "auto":
        return modes[0], "device"
    if device.free_gb >= everything:
        return "gpu", "device"
    if device.free_gb >= without_text_encoder:
        return "gpu", "cpu"
    return ("model_offload" if device.free_gb >= offloaded else "group_offload"), "device"


def text_encoder_leaves(mode, place):
    """Whether a video family's text encoder goes to the CPU as soon as the prompt is encoded:
    where every model is kept on the GPU and the text encoder encodes there (the offload modes
    move it off themselves; one encoding on the CPU never comes to the GPU)."""
    return mode == "gpu" and place == "device"


def video_vae_tiling(mode):
    """Whether a video family decodes its clip tile by tile: wherever the models do not all stay
    on the GPU (a clip's decode at full size takes several GB at once); the CPU has the memory."""
    return mode not in ("gpu", "cpu")


def video_card_modes(need, dtype, cards_gb=(8, 12, 16, 24)):
    """{"12 GB": plan, ...}: what the automatic choice gives a video family on an NVIDIA card of
    each size (about 1 GB taken by the desktop): a memory mode, "gpu_text_encoder_cpu" where the
    text encoder encodes on the CPU and the rest stays on the GPU."""
    out = {}
    for gb in cards_gb:
        mode, place = video_memory("auto", Device("cuda", f"{gb} GB card", dtype, "CUDA", gb - 1.0, float(gb)), need)
        out[f"{gb} GB"] = "gpu_text_encoder_cpu" if place == "cpu" else mode
    return out


def lighter(mode, kind):
    """The next lighter memory mode after running out of memory (the same when none is left)."""
    modes = MODES[kind]
    return modes[min(modes.index(mode) + 1, len(modes) - 1)] if mode in modes else modes[-1]


def free_memory(kind):
    """(free, total) bytes on the device now."""
    if kind == "cuda":
        return torch.cuda.mem_get_info()
    if kind == "mps":
        return _mps_memory()
    if kind == "xpu" and hasattr(torch.xpu, "mem_get_info"):
        return torch.xpu.mem_get_info()
    import psutil
    ram = psutil.virtual_memory()
    return ram.available, ram.total


def empty_cache(kind):
    if kind == "cuda":
        torch.cuda.empty_cache()
    elif kind == "mps":
        torch.mps.empty_cache()
    elif kind == "xpu":
        torch.xpu.empty_cache()


def is_out_of_memory(exc):
    """torch's OutOfMemoryError, or MPS's plain RuntimeError saying the same."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def generators(seed, count):
    """Seeded generators on the CPU: a seed gives the same picture on every device."""
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(count)]


def findings(p):
    """What is wrong with this torch on this machine: [{level, message, fix}]; MISSING means
    a GPU sits unused. Fixes name the set-up command with the right GPU."""
    seen = {g.vendor: g for g in p.gpus}
    out = []

    def missing(vendor, what):
        gpu = seen[vendor]
        out.append({"level": "MISSING", "message": f"{what} {gpu.name} is present ({gpu.source}) but torch "
                    f"{p.torch_version} is {build_label(p)}: generation runs on the CPU, many minutes per image",
                    "fix": f"Backend > Set Up Backend again with GPU '{vendor}' (command line: python -m "
                    f"characterforge_addon.backend setup --gpu {vendor})"})

    if "nvidia" in seen and (not p.cuda_build or p.hip_build):
        missing("nvidia", "an NVIDIA GPU")
    if "amd" in seen and not p.hip_build and "nvidia" not in seen:
        if p.system == "Linux":
            missing("amd", "an AMD GPU")
        else:
            out.append({"level": "note", "message": f"an AMD GPU ({seen['amd'].name}) is present, but PyTorch has "
                        f"ROCm builds for Linux only: on {p.system} the backend runs on the CPU",
                        "fix": "run the backend on Linux with ROCm, or on an NVIDIA card"})
    if "apple" in seen and "mps" not in p.available:
        out.append({"level": "MISSING", "message": f"{seen['apple'].name} is present but torch {p.torch_version} "
                    "cannot use it (MPS unavailable: macOS older than 12.3, or an x86_64 Python under Rosetta)",
                    "fix": "update macOS, then Backend > Set Up Backend again (it installs the arm64 build)"})
    if p.cuda_build and not p.hip_build and "cuda" not in p.available and "nvidia" in seen:
        out.append({"level": "MISSING", "message": f"torch {p.torch_version} is built for CUDA {p.cuda_build} but "
                    "sees no GPU: the NVIDIA driver is too old for this CUDA or not loaded",
                    "fix": "update the NVIDIA driver (nvidia-smi shows its version), then restart the backend"})
    if p.available[0] == "cpu" and not p.gpus:
        out.append({"level": "note", "message": "no GPU found: the backend runs on the CPU (minutes per image); "
                    "the tiny profile and small sizes still work", "fix": ""})
    return out



def compile_helps(p=None, has_triton=None):
    """torch.compile pays on this machine (or probe `p`): a CUDA or ROCm GPU, and Triton, which
    its GPU code generator needs (Windows builds of torch ship without it: `pip install
    triton-windows`)."""
    import importlib.util
    if has_triton is None:
        has_triton = importlib.util.find_spec("triton") is not None
    return choose(p or probe()).kind == "cuda" and has_triton


def grad_scaler(kind, dtype):
    """Loss scaling for training through float16 weights (their gradients underflow without it);
    None for bfloat16 and float32, which need none."""
    if dtype != torch.float16 or kind not in ("cuda", "mps", "xpu"):
        return None
    return torch.amp.GradScaler(kind)


def adam_8bit(kind):
    """8-bit AdamW (bitsandbytes) where it is installed and the device is CUDA, else None: it
    quarters the optimizer's memory; elsewhere torch's AdamW."""
    import importlib.util
    if kind != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
        return None
    import bitsandbytes
    return bitsandbytes.optim.AdamW8bit


def gradient_checkpointing(kind):
    """Whether training recomputes activations instead of keeping them: on a GPU it is what makes
    SDXL at 1024² fit 12 GB (about a third more time); on the CPU memory is plentiful, time is not."""
    return kind != "cpu"
