"""Reading the passes of an uncompressed OpenEXR file with numpy alone: the light reference's
one Cycles render is written as a multilayer EXR (every pass in one file, one part per pass in
Blender 5, one part for all in 4.2), and Blender's Python can read back only one pass of
such a file. Scanline files without compression (Blender's codec NONE) only: that is what we
write, and reading it is a gather of bytes."""

import struct

import numpy as np

MAGIC = b"\x76\x2f\x31\x01"
_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_TILED, _MULTIPART = 0x200, 0x1000


class ExrError(ValueError):
    pass


def _cstring(data, at):
    end = data.index(b"\0", at)
    return data[at:end].decode("utf-8", "replace"), end + 1


def _header(data, at):
    """({attribute: (type, raw value)}, position after the header)."""
    attributes = {}
    while data[at] != 0:
        name, at = _cstring(data, at)
        kind, at = _cstring(data, at)
        size, = struct.unpack_from("<i", data, at)
        attributes[name] = (kind, data[at + 4:at + 4 + size])
        at += 4 + size
    return attributes, at + 1


def _channels(raw):
    out, at = [], 0
    while raw[at] != 0:
        name, at = _cstring(raw, at)
        kind, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", raw, at)
        if (x_sampling, y_sampling) != (1, 1):
            raise ExrError(f"channel {name} is subsampled: not supported")
        out.append((name, _TYPES[kind]))
        at += 16
    return out


def read_exr(data):
    """{channel name ("ViewLayer.DiffDir.R", ...): float32 (H, W), rows top-down} of every part."""
    if data[:4] != MAGIC:
        raise ExrError("not an OpenEXR file")
    flags, = struct.unpack_from("<I", data, 4)
    if flags & _TILED:
        raise ExrError("tiled EXR files are not supported: write scanlines")
    multipart = bool(flags & _MULTIPART)
    at, headers = 8, []
    while True:
        header, at = _header(data, at)
        headers.append(header)
        if not multipart or data[at] == 0:
            break
    if multipart:
        at += 1  # the empty header that ends the list
    buf = np.frombuffer(data, dtype=np.uint8)
    out = {}
    for part, header in enumerate(headers):
        if header["compression"][1][0] != 0:
            raise ExrError("the EXR is compressed: write it with codec NONE")
        x0, y0, x1, y1 = struct.unpack("<4i", header["dataWindow"][1])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        offsets = np.frombuffer(data, dtype="<u8", count=height, offset=at).astype(np.int64)
        at += 8 * height
        channels = _channels(header["channels"][1])  # stored in this order in every line
        lead = 12 if multipart else 8  # (part number,) line number, byte count
        size = lead + sum(width * dtype.itemsize for _, dtype in channels)
        if np.all(np.diff(offsets) == size):  # the lines one after another: one view of the bytes
            rows = buf[offsets[0]:offsets[0] + height * size].reshape(height, size)
        else:
            rows = buf[offsets[:, None] + np.arange(size)]
        ys = rows[:, lead - 8:lead - 4].copy().view("<i4")[:, 0] - y0
        if sorted(ys.tolist()) != list(range(height)):
            raise ExrError("the EXR's lines do not cover its data window")
        column = lead
        for name, dtype in channels:
            step = width * dtype.itemsize
            values = np.empty((height, width), np.float32)
            values[ys] = rows[:, column:column + step].copy().view(dtype)
            out[name] = values
            column += step
    return out
