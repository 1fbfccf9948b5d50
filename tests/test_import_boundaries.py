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


def is_module(parts):
    """Whether the dotted `parts` (from ROOT) name a module or a package of ours."""
    where = os.path.join(ROOT, *parts)
    return os.path.isfile(where + ".py") or os.path.isfile(os.path.join(where, "__init__.py"))


def local_imports(path):
    """The package modules `path` imports (relative imports, function-level ones too). In
    `from PKG import NAME` the edge goes to the module PKG.NAME when there is one (a file or a
    package), else to PKG (NAME is then defined in PKG's __init__)."""
    package = os.path.relpath(os.path.dirname(path), ROOT).split(os.sep)
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            parts = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                yield ".".join(parts + [alias.name] if is_module(parts + [alias.name]) else parts)


def module_graph():
    graph = {}
    for path in modules():
        name = path[:-3].replace(os.sep, ".").removesuffix(".__init__")
        graph[name] = set(local_imports(os.path.join(ROOT, path)))
    return {m: {i for i in deps if i in graph and i != m} for m, deps in graph.items()}


def find_cycles(graph):
    cycles = []
    done = set()

    def visit(node, trail):
        for nxt in graph[node]:
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return sorted(set(cycles))


def test_no_import_cycles_in_the_add_on():
    cycles = find_cycles(module_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_from_a_package_import_a_module_is_an_edge_to_that_module():
    def deps(*module):
        return set(local_imports(os.path.join(ADDON, "backend", *module)))
    # from ..engine import device, metadata: the modules, not engine's __init__
    assert {"characterforge_addon.backend.engine.device", "characterforge_addon.backend.engine.metadata",
            "characterforge_addon.backend.models.lora_files"} <= deps("jobs", "training.py")
    assert "characterforge_addon.backend.engine" not in deps("jobs", "training.py")
    # from ..families import FAMILIES: a name in families' __init__, so the package
    assert "characterforge_addon.backend.families" in deps("models", "profiles.py")


def test_the_cycle_finder_finds_one():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]


SCRIPTS = os.path.join(ROOT, "blender_scripts")


def script_graph():
    """blender_scripts' modules and the sibling modules each imports by name (they put their
    folders on sys.path)."""
    paths = {}
    for folder, _, files in os.walk(SCRIPTS):
        for f in files:
            if f.endswith(".py"):
                paths[f[:-3]] = os.path.join(folder, f)
    return {name: set(imports(path)) & set(paths) - {name} for name, path in paths.items()}


def test_no_import_cycles_in_the_scripts():
    cycles = find_cycles(script_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# Which room may not import which: a room's code never reaches into a room above it.
FORBIDDEN = {
    "characterforge_addon.core": ("characterforge_addon.blender", "characterforge_addon.backend",
                                  "characterforge_addon.client"),
    "characterforge_addon.client": ("characterforge_addon.blender", "characterforge_addon.backend"),
    "characterforge_addon.backend.jobs": ("characterforge_addon.backend.serving",),
    "characterforge_addon.backend.engine": ("characterforge_addon.backend.jobs", "characterforge_addon.backend.serving"),
    "characterforge_addon.backend.families": ("characterforge_addon.backend.jobs",
                                              "characterforge_addon.backend.serving"),
    "characterforge_addon.backend.models": ("characterforge_addon.backend.jobs", "characterforge_addon.backend.serving"),
    "characterforge_addon.backend.tiny": ("characterforge_addon.backend.engine", "characterforge_addon.backend.jobs",
                                          "characterforge_addon.backend.serving",
                                          "characterforge_addon.backend.families"),
}
# ui/ draws every room; no room imports the sidebar.
FORBIDDEN.update({f"characterforge_addon.blender.{room}": ("characterforge_addon.blender.ui",)
                  for room in ("rig", "maps", "generation", "characters", "shots", "sets", "backend")})


def test_rooms_import_only_what_their_rule_allows():
    broken = []
    for module, deps in module_graph().items():
        for room, forbidden in FORBIDDEN.items():
            if module == room or module.startswith(room + "."):
                broken += [f"{module} imports {d}" for d in deps if d.startswith(forbidden)]
    assert not broken, "\n".join(sorted(broken))


def test_every_folder_says_what_lives_there_and_stays_small():
    for folder, dirs, files in os.walk(ADDON):
        dirs[:] = [d for d in dirs if not d.startswith("__")]
        modules = [f for f in files if f.endswith(".py") and f != "__init__.py"]
        if not modules and not dirs:
            continue  # a data folder (profiles, locks)
        init = os.path.join(folder, "__init__.py")
        assert os.path.isfile(init), f"{folder} has no __init__.py"
        assert ast.get_docstring(ast.parse(open(init, encoding="utf-8").read())), f"{init}: no docstring"
        assert len(modules) <= 16, f"{folder} holds {len(modules)} modules: split it by role"
