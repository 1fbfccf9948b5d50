"""The layers stay apart: pure code imports neither bpy nor torch, add-on code outside the
backend imports no ML library (Blender's Python has none), and bpy stays inside blender/."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDON = os.path.join(ROOT, "characterforge_addon")
BLENDER_MODULES = {"bpy", "bmesh", "mathutils", "bpy_extras", "gpu", "addon_utils"}
ML_MODULES = {"torch", "torchvision", "diffusers", "transformers", "insightface", "controlnet_aux",
              "onnxruntime", "accelerate", "safetensors", "cv2", "PIL", "fastapi", "uvicorn"}


def imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def modules(subdir=""):
    base = os.path.join(ADDON, subdir)
    for folder, _, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, f), ROOT)


def layer(path):
    parts = path.split(os.sep)
    return parts[1] if len(parts) > 2 else "package"


@pytest.mark.parametrize("path", sorted(modules()))
def test_layer_imports(path):
    found = set(imports(os.path.join(ROOT, path)))
    kind = layer(path)
    if kind in ("core", "client", "package"):
        assert not found & (BLENDER_MODULES | ML_MODULES), f"{path} is pure but imports {found & (BLENDER_MODULES | ML_MODULES)}"
    elif kind == "blender":
        assert not found & ML_MODULES, f"{path} runs inside Blender but imports {found & ML_MODULES}"
    elif kind == "backend":
        assert not found & BLENDER_MODULES, f"{path} is backend code but imports {found & BLENDER_MODULES}"


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\nfrom bpy import types\n")
    assert set(imports(str(bad))) == {"torch", "bpy"}
