"""Faces with insightface: find them (SCRFD detector) and embed them (ArcFace recogniser).

Loaded from the profile's `insightface` folder of .onnx files (buffalo_l for real use; its
licence is non-commercial). Never downloads: a missing folder is reported by the doctor.
"""

from dataclasses import dataclass

import numpy as np

from ..models import models


@dataclass
class Face:
    box: tuple          # (x0, y0, x1, y1), whole pixels, clipped to the image
    score: float
    embedding: object   # unit-length float32 (512,) or None without a recogniser


class FaceTools:
    def __init__(self, source, models_dir):
        from insightface.app import FaceAnalysis
        folder, _ = models.resolve_for_loading(source, models_dir, allow_download=False)  # makes tiny ones
        try:
            self._app = FaceAnalysis(name=folder, allowed_modules=["detection", "recognition"],
                                     providers=["CPUExecutionProvider"])
        except (AssertionError, OSError, ValueError, RuntimeError) as exc:
            raise models.ModelMissing("insightface", f"could not load the insightface models ({exc or 'no detector'})",
                                      folder, "unpack insightface's buffalo_l pack there (non-commercial licence)"
                                      ) from None
        self._app.prepare(ctx_id=-1, det_size=(640, 640))
        self.has_recogniser = "recognition" in self._app.models

    def find(self, rgb):
        """Faces in an (H, W, 3) uint8 RGB image, largest first."""
        h, w = rgb.shape[:2]
        found = []
        for face in self._app.get(np.ascontiguousarray(rgb[..., ::-1])):  # insightface takes BGR
            x0, y0, x1, y1 = face.bbox
            box = (int(max(0, np.floor(x0))), int(max(0, np.floor(y0))), int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1))))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            embedding = getattr(face, "normed_embedding", None) if self.has_recogniser else None
            found.append(Face(box, float(face.det_score), None if embedding is None else embedding.astype(np.float32)))
        return sorted(found, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))

    def embed(self, rgb):
        """The embedding of the largest face in an image, or None when none is found."""
        faces = self.find(rgb)
        return faces[0].embedding if faces else None
