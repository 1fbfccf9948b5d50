"""Pictures from job specs: PNG bytes decoded to RGB, refusing what is not a PNG and
decompression bombs."""

import io

from PIL import Image

from ...core.errors import UserError
from ...core.spec.job_spec import LIMITS


def decode_image_bytes(data, field):
    """A PNG from the job spec as an RGB PIL image, refusing non-PNG bytes and bombs."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise UserError(f"{field}: not a PNG file")
    Image.MAX_IMAGE_PIXELS = LIMITS["max_pixels"]
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > LIMITS["max_pixels"]:
            raise UserError(f"{field}: {img.width}x{img.height} is over the {LIMITS['max_pixels']}-pixel limit")
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{field}: the PNG expands to more than {LIMITS['max_pixels']} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{field}: unreadable PNG ({exc})") from None
    return img.convert("RGB")


def picture_size(data):
    """(width, height) of a PNG already checked by `decode_image_bytes`, read from its header."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size
