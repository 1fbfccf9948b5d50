"""Previews while a job denoises: the latents decoded by a tiny autoencoder (TAESD, when the
profile names one: a real picture for a few milliseconds on a GPU), else turned into a small
RGB picture with a linear map, one pixel per latent."""

import numpy as np

from ...core.image_io import encode_png

# latent channel -> RGB, fitted for each family's VAE (the factors ComfyUI uses for its previews)
FACTORS = {
    "sdxl": (np.array([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
                       [-0.3165, -0.2492, -0.2188]]), np.array([0.1084, -0.0175, -0.0011])),
    "sd15": (np.array([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
                       [-0.2120, -0.2616, -0.7177]]), np.zeros(3)),
    # Qwen-Image's VAE is Wan 2.1's: its 16 normalised channels (ComfyUI's Wan21 factors)
    "qwen_edit": (np.array([[-0.1299, -0.1692, 0.2932], [0.0671, 0.0406, 0.0442], [0.3568, 0.2548, 0.1747],
                            [0.0372, 0.2344, 0.1420], [0.0313, 0.0189, -0.0328], [0.0296, -0.0956, -0.0665],
                            [-0.3477, -0.4059, -0.2925], [0.0166, 0.1902, 0.1975], [-0.0412, 0.0267, -0.1364],
                            [-0.1293, 0.0740, 0.1636], [0.0680, 0.3019, 0.1128], [0.0032, 0.0581, 0.0639],
                            [-0.1251, 0.0927, 0.1699], [0.0060, -0.0633, 0.0005], [0.3477, 0.2275, 0.2950],
                            [0.1984, 0.0913, 0.1861]]), np.array([-0.1835, -0.0868, -0.3360])),
}
# the video families' latents are the same VAE's (Wan 2.1): a frame from the clip's middle
FACTORS["wan_vace"] = FACTORS["wan_animate"] = FACTORS["qwen_edit"]


def latent_preview(latents, family):
    """PNG bytes of the first image of a (batch, channels, h, w) latent tensor, or None when
    the family has no factors for that many channels."""
    factors, bias = FACTORS[family]
    if latents.shape[1] != len(factors):
        return None
    first = latents[0].detach().float().cpu().numpy()  # (channels, h, w)
    rgb = np.tensordot(first, factors, axes=([0], [0])) + bias  # (h, w, 3), about -1..1
    return encode_png(np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8))


PREVIEW_SIDE = 256  # a preview's longest side: the panel shows it small, and the PNG encode stays cheap


def decoded_preview(decoder, latents):
    """PNG bytes of the first image of `latents` decoded by `decoder` (diffusers' AutoencoderTiny,
    which takes the denoiser's latents as they are), at most PREVIEW_SIDE pixels a side."""
    import torch
    from PIL import Image
    with torch.no_grad():
        first = latents[:1].to(decoder.device, decoder.dtype)
        image = decoder.decode(first, return_dict=False)[0][0].float().clamp(-1, 1)
    pixels = ((image + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(pixels)
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return encode_png(np.asarray(picture))
