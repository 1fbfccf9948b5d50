"""PNG encoding and atomic file writes, with the standard library and numpy only."""

import os
import struct
import tempfile
import zlib

import numpy as np


def encode_png(pixels, text=None):
    """PNG bytes of an 8-bit (H, W), (H, W, 3) or (H, W, 4) array, rows top-down.

    `text`: optional {keyword: value} written as tEXt chunks (iTXt, UTF-8, when not Latin-1).
    """
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        color_type, channels = 0, 1
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        color_type, channels = (2, 3) if pixels.shape[2] == 3 else (6, 4)
    else:
        raise ValueError(f"PNG pixels must be (H, W), (H, W, 3) or (H, W, 4), got {pixels.shape}")
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, w * channels)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter type 0 on every row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    out = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))]
    for key, value in (text or {}).items():
        try:
            out.append(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            out.append(chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
    out.append(chunk(b"IDAT", zlib.compress(raw.tobytes(), 1)))  # control maps are mostly flat: level 1 is as small, and fast
    out.append(chunk(b"IEND", b""))
    return b"".join(out)


def write_atomic(path, data):
    """Write bytes to `path` through a temporary file in the same folder, then rename.

    A reader never sees a half-written file under the final name; on failure nothing is left.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_writable_folder(folder):
    """Create `folder` if needed; raise OSError with the fix if it cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise OSError(f"output folder {folder} cannot be written ({exc.strerror or exc}): "
                      "choose another folder or fix its permissions") from None
