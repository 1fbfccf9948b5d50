"""The fast path: speed-ups on by default, each one switchable off for a user who hits a
problem with it (`serve --without NAME`, repeatable). Exact ones give the same pixels as
without them (tests check each); BENCHMARKS.md has their figures."""

from ..core.errors import UserError

SPEEDUPS = {
    "skip_idle_controlnets": "no ControlNet work at the steps outside its start-end range (diffusers runs it at "
                             "scale 0 there: about 31 % of an SDXL step per ControlNet); exact",
    "batched_hands": "every hand of a shot redrawn in one batch at the size its box needs (not one by one at the "
                     "model's full size)",
    "channels_last": "the UNet's, ControlNets' and VAE's convolutions in channels-last memory order (the layout "
                     "GPU convolution kernels prefer); the same pixels within float rounding",
}


def chosen(without=()):
    """The speed-ups on: all but those in `without` (UserError naming an unknown one)."""
    unknown = sorted(set(without) - set(SPEEDUPS))
    if unknown:
        raise UserError(f"--without {unknown[0]}: no such speed-up; they are {', '.join(SPEEDUPS)}")
    return frozenset(SPEEDUPS) - set(without)
