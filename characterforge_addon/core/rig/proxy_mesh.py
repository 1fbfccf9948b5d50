"""Geometry of the proxy body: one closed, rounded tube per ProxyPart, rigidly bound to its bone.

Rigid binding keeps the proxy exact under any pose (no skinning artefacts in depth maps).
"""

import numpy as np

RINGS = 10
SEGMENTS = 12


def _frame(axis, side):
    side = np.asarray(side, dtype=np.float64)
    side = side - axis * np.dot(side, axis)
    if np.linalg.norm(side) < 1e-6:  # side along the axis: pick any perpendicular
        side = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
    side /= np.linalg.norm(side)
    return side, np.cross(axis, side)


def tube(part, rings=RINGS, segments=SEGMENTS):
    """(verts (N, 3), quads and triangles as lists of index tuples) of one closed rounded tube."""
    start, end = np.asarray(part.start, float), np.asarray(part.end, float)
    axis = end - start
    length = np.linalg.norm(axis)
    axis = axis / length
    u, v = _frame(axis, part.side)
    t = np.linspace(0.0, 1.0, rings + 2)[1:-1]  # the poles are separate vertices
    cap = max(part.cap, 1e-3)
    edge = np.minimum(t, 1.0 - t)
    scale = np.where(edge < cap, np.sqrt(np.clip(1.0 - (1.0 - edge / cap) ** 2, 0.0, 1.0)), 1.0)
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    ring = np.cos(angles)[:, None] * u * part.width + np.sin(angles)[:, None] * v * part.depth
    verts = (start + t[:, None, None] * axis * length) + scale[:, None, None] * ring[None]
    verts = np.concatenate([verts.reshape(-1, 3), [start, end]])
    faces = []
    for r in range(rings - 1):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    bottom, top = len(verts) - 2, len(verts) - 1
    last = (rings - 1) * segments
    for s in range(segments):
        n = (s + 1) % segments
        faces.append((bottom, n, s))
        faces.append((top, last + s, last + n))
    return verts, faces


def build(parts):
    """Join tubes into one mesh: (verts, faces, {bone: [vertex indices]})."""
    all_verts, all_faces, groups = [], [], {}
    offset = 0
    for part in parts:
        verts, faces = tube(part)
        all_verts.append(verts)
        all_faces += [tuple(i + offset for i in f) for f in faces]
        groups.setdefault(part.bone, []).extend(range(offset, offset + len(verts)))
        offset += len(verts)
    return np.concatenate(all_verts), all_faces, groups
