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


class PNGError(ValueError):
    pass


def _chunks(data):
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise PNGError("not a PNG file")
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise PNGError("the PNG is cut short")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise PNGError("the PNG is cut short")


def read_png_text(data):
    """{keyword: text} of a PNG's tEXt and uncompressed iTXt chunks."""
    out = {}
    for kind, body in _chunks(data):
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            if rest[:1] == b"\0":  # not compressed
                value = rest[2:].split(b"\0", 2)[-1]
                out[key.decode("latin-1")] = value.decode("utf-8")
    return out


def decode_png(data, max_pixels=64 * 2**20):
    """Pixels of an 8-bit, non-interlaced grey, grey+alpha, RGB or RGBA PNG (as PIL and our
    own encoder write them), rows top-down; PNGError for anything else."""
    header, idat = None, []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise PNGError("the PNG has no header")
    w, h, depth, color, _, _, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise PNGError(f"unsupported PNG (bit depth {depth}, colour type {color}, interlace {interlace}): "
                       "save it as 8-bit RGB or RGBA")
    if w * h > max_pixels:
        raise PNGError(f"{w}x{h} is over the {max_pixels}-pixel limit")
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    except zlib.error as exc:
        raise PNGError(f"the PNG's image data is damaged ({exc})") from None
    stride = w * channels
    if raw.size != h * (stride + 1):
        raise PNGError("the PNG's image data has the wrong length")
    rows = raw.reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, channels), axis=0).reshape(-1) & 0xFF
        elif kind == 2:
            cur = (line + previous) & 0xFF
        elif kind in (3, 4):
            cur = _sequential_filter(kind, line, previous, channels)
        else:
            raise PNGError(f"row {y} has unknown filter type {kind}")
        out[y] = cur
        previous = cur.astype(np.int32)
    return out.reshape(h, w, channels) if channels > 1 else out.reshape(h, w)


def _sequential_filter(kind, line, up, bpp):
    """Average (3) and Paeth (4) rows: each byte depends on the decoded byte to its left."""
    cur = np.zeros(len(line), dtype=np.int32)
    line, up = line.tolist(), up.tolist()
    out = cur.tolist()
    for i in range(len(line)):
        a = out[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            out[i] = (line[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (line[i] + pred) & 0xFF
    return np.array(out, dtype=np.int32)
