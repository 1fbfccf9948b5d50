"""The fast path's speed-ups by name: what each does and where those that pay only on some
machines are on by default. Pure, so the add-on's preferences can offer the same switches the
backend's `serve --without/--with` take (backend/engine/speedups.py decides which are on)."""

SPEEDUPS = {
    "skip_idle_controlnets": "no ControlNet work at the steps outside its start-end range (diffusers runs it at "
                             "scale 0 there: about 31 % of an SDXL step per ControlNet); exact",
    "batched_hands": "every hand of a shot redrawn in one batch at the size its box needs (not one by one at the "
                     "model's full size)",
    "channels_last": "the UNet's, ControlNets' and VAE's convolutions in channels-last memory order (the layout "
                     "GPU convolution kernels prefer); the same pixels within float rounding",
    "fused_qkv": "each plain attention's query, key and value projections (a cross-attention's key and value) "
                 "in one matrix multiply, for the length of a call and only where no LoRA or IP-Adapter acts on "
                 "them; no extra memory; in the gpu and cpu memory modes with native weights; the same pixels "
                 "within float rounding",
    "compile": "torch.compile of the denoiser's and ControlNets' repeated blocks and the VAE decoder's up blocks "
               "(regional compilation: one compile per block shape, a short cold start), the compiled code kept "
               "in <data>/compile_cache so the next start reuses it; in the gpu and cpu memory modes; the same "
               "pixels within float rounding",
}
# Where each speed-up that pays only on some machines is on by default (device.compile_helps
# decides for this machine); compiling on a CPU or Apple GPU costs more than it gains, and fused
# projections were slower on a CPU (BENCHMARKS.md) and pay on a GPU mostly under torch.compile.
ON_WHERE = {"compile": "CUDA and ROCm GPUs with Triton", "fused_qkv": "CUDA and ROCm GPUs with Triton"}
