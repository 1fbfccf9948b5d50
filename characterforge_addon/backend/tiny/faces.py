"""Tiny insightface-shaped ONNX models for the `tiny` profile: a detector with SCRFD's nine
outputs and an ArcFace-shaped recogniser, so the face paths run offline through the real
insightface code.

They are not trained. The detector reports one face: the brightest 32-pixel patch of the
image (ties give more), with a fixed box and five landmarks around it. The recogniser is a
seeded random projection of the aligned 112x112 crop to 512 numbers.
"""

import os

DET_SIZE = 640
STRIDES = (8, 16, 32)
BOX_HALF = 1.5  # box half size, in stride-32 units: a 96-pixel face at the detector's input scale
# five landmarks (eyes, nose, mouth corners) relative to the box centre, in stride-32 units
LANDMARKS = ((-0.5, -0.35), (0.5, -0.35), (0.0, 0.1), (-0.4, 0.6), (0.4, 0.6))


def _detector():
    import torch

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("landmarks", torch.tensor([c for point in LANDMARKS for c in point]))

        def forward(self, x):  # x: (1, 3, 640, 640), insightface's (pixel - 127.5) / 128
            outputs = {"score": [], "bbox": [], "kps": []}
            for stride in STRIDES:
                n = (DET_SIZE // stride) ** 2 * 2  # two anchors per location
                if stride != 32:
                    outputs["score"].append(torch.zeros(n, 1) + x.sum() * 0)
                    outputs["bbox"].append(torch.ones(n, 4))
                    outputs["kps"].append(torch.zeros(n, 10))
                    continue
                level = torch.nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), stride)  # (1, 1, 20, 20)
                score = torch.sigmoid((level - level.max() + 0.01) * 400.0)  # > 0.5 only at the brightest
                score = score.permute(0, 2, 3, 1).reshape(-1, 1).repeat_interleave(2, dim=0)
                outputs["score"].append(score)
                outputs["bbox"].append(torch.full((n, 4), BOX_HALF))
                outputs["kps"].append(self.landmarks.repeat(n, 1))
            return tuple(outputs["score"] + outputs["bbox"] + outputs["kps"])

    return Detector()


def _recogniser():
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 512))


def make(folder):
    """Write det_tiny.onnx and rec_tiny.onnx into `folder`."""
    import torch
    os.makedirs(folder, exist_ok=True)
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
    torch.onnx.export(_detector(), torch.zeros(1, 3, DET_SIZE, DET_SIZE), os.path.join(folder, "det_tiny.onnx"),
                      input_names=["input.1"], output_names=names, dynamo=False, opset_version=17)
    torch.onnx.export(_recogniser(), torch.zeros(1, 3, 112, 112), os.path.join(folder, "rec_tiny.onnx"),
                      input_names=["input.1"], output_names=["embedding"], dynamic_axes={"input.1": {0: "n"}},
                      dynamo=False, opset_version=17)
