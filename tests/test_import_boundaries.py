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


def local_imports(path):
    """The package modules `path` imports (relative imports, function-level ones too)."""
    package = os.path.relpath(os.path.dirname(path), ROOT).split(os.sep)
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            parts = base + (node.module.split(".") if node.module else [])
            if node.module:
                yield ".".join(parts)
            else:
                yield from (".".join(parts + [alias.name]) for alias in node.names)


def module_graph():
    graph = {}
    for path in modules():
        name = path[:-3].replace(os.sep, ".").removesuffix(".__init__")
        graph[name] = set(local_imports(os.path.join(ROOT, path)))
    return {m: {i for i in deps if i in graph and i != m} for m, deps in graph.items()}


def test_no_import_cycles_between_modules_of_one_layer():
    graph = module_graph()
    cycles = []

    def visit(node, trail):
        for nxt in graph[node]:
            if nxt in trail:
                cycle = trail[trail.index(nxt):]
                if len({layer(m.replace(".", os.sep) + ".py") for m in cycle}) == 1:
                    cycles.append(" -> ".join(cycle + [nxt]))
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(node)

    done = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
