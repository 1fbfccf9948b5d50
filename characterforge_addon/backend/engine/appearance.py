"""Appearance: CLIP image embeddings of a character's region, from the profile's image encoder
(the one the IP-Adapters load: no other model). They keep the look of a creature or an object
(the appearance IP-Adapter takes the pack's mean embedding) and score every output (the
cosine of the output's region to the pack's views: core.characters.scores.appearance).

A region is what its mask shows, cut to the mask's box, everything else white and padded to a
square (the encoder's processor crops to a square: a car seen from the side would lose its
ends), so a pack's views (masked by the sheet's own depth) and a shot's character (masked by
its rig or mesh) are compared on the same terms: the character alone."""

import numpy as np
import torch
from PIL import Image

from ..models import models

GROW = 3          # pixels the mask grows by: the drawing may reach a little past the silhouette
BACKGROUND = 255  # what is not the character: white, as a sheet's ground


def _grow(mask, pixels):
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(pixels, pixels) if a == axis else (0, 0) for a in (0, 1)])
        out = np.lib.stride_tricks.sliding_window_view(padded, 2 * pixels + 1, axis=axis).any(axis=-1)
    return out


def region(pixels, mask=None, grow=GROW):
    """The character's picture for its embedding (HxWx3 uint8, square), or None when `mask`
    (bool HxW, None: the whole picture) shows nothing."""
    pixels = np.asarray(pixels)[..., :3]
    if mask is None:
        crop = pixels
    else:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return None
        area = _grow(mask, grow) if grow else mask
        ys, xs = np.nonzero(area)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = np.where(area[y0:y1, x0:x1, None], pixels[y0:y1, x0:x1], np.uint8(BACKGROUND))
    h, w = crop.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), BACKGROUND, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = crop
    return square


class Appearance:
    """The profile's image encoder, loaded once (shared with the IP-Adapters), and embeddings
    from it; `missing` says why there is none."""

    def __init__(self, engine):
        self.engine = engine
        self._loaded = None

    @property
    def missing(self):
        if "image_encoder" not in self.engine.profile.models:
            return f"an image encoder (profile {self.engine.profile.name} names no image_encoder role)"
        return None

    def model_name(self):
        """What made the embeddings, for a pack's record: the encoder's source."""
        return f"{self.engine.profile.models['image_encoder'].location} (CLIP image embeddings)"

    def encoder(self):
        """(CLIPVisionModelWithProjection, CLIPImageProcessor) of the image_encoder role."""
        if self._loaded is None:
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
            engine = self.engine
            if self.missing:
                raise models.ModelMissing("image_encoder", f"no image encoder: {self.missing}", "",
                                          "add [models.image_encoder] to the profile (see the sdxl profile)")
            source = engine.profile.models["image_encoder"]
            path, kwargs = models.resolve_for_loading(source, engine.models_dir, engine.allow_download)
            kwargs.setdefault("local_files_only", True)
            try:
                encoder = CLIPVisionModelWithProjection.from_pretrained(path, dtype=engine.dtype,
                                                                        use_safetensors=True, **kwargs)
                processor = CLIPImageProcessor.from_pretrained(path, **kwargs)
            except (OSError, ValueError) as exc:
                raise models.ModelMissing("image_encoder", f"could not load {source.location}: "
                                          f"{str(exc).splitlines()[0]}", path,
                                          "run doctor for the exact files and commands") from None
            self._loaded = (encoder, processor)
        return self._loaded

    def embed(self, pictures):
        """Image embeddings (n x the encoder's projection size, float32, not unit length) of
        square HxWx3 uint8 pictures (`region`)."""
        encoder, processor = self.encoder()
        if not hasattr(encoder, "_hf_hook"):  # on its own (no pipeline's offload hooks move it): on the device
            encoder.to(self.engine.device)
        inputs = processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt").pixel_values
        with torch.no_grad():
            out = encoder(inputs.to(self.engine.device, self.engine.dtype)).image_embeds
        return out.float().cpu().numpy()

    def of_regions(self, pictures, masks):
        """[embedding as a list of floats, or None where the mask is empty] for each picture
        and its mask (None: the whole picture)."""
        regions = [region(p, m) for p, m in zip(pictures, masks)]
        found = [r for r in regions if r is not None]
        vectors = iter(self.embed(found)) if found else iter(())
        return [None if r is None else [round(float(v), 6) for v in next(vectors)] for r in regions]
