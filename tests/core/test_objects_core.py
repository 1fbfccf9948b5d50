"""Creatures and objects in the pure core: line art on known depth and normals, the object
sheet's layout and framing, packs of each kind, appearance scores and the spec rules."""

import base64
import io
import json

import numpy as np
import pytest

from characterforge_addon.core.characters import identity_pack, kinds, object_sheet, scores
from characterforge_addon.core.image_io import encode_png
from characterforge_addon.core.maps import line_art
from characterforge_addon.core.spec.job_spec import JobSpecError, needs, validate_job


def test_line_art_draws_outlines_occluding_edges_and_creases_but_no_slopes():
    h = w = 24
    y, x = np.mgrid[0:h, 0:w]
    depth = np.full((h, w), 1e10)
    depth[2:22, 2:22] = 10 + 0.4 * x[2:22, 2:22]  # an oblique plane: no lines of its own
    depth[8:12, 8:12] = 5                          # a box in front of it: an occluding edge
    lines = line_art.line_art(depth) > 0
    outline = np.zeros((h, w), bool)
    outline[2, 2:22] = outline[21, 2:22] = outline[2:22, 2] = outline[2:22, 21] = True
    box = np.zeros((h, w), bool)
    box[8, 8:12] = box[11, 8:12] = box[8:12, 8] = box[8:12, 11] = True
    assert np.array_equal(lines, outline | box)  # on the near side, one pixel wide
    normals = np.zeros((h, w, 3))
    normals[..., 2] = 1
    normals[:, 12:] = (0.7071, 0, 0.7071)  # a crease of 45 degrees down the middle
    flat = np.where(np.isfinite(depth) & (depth < 1e9), 10.0, 1e10)
    creased = line_art.line_art(flat, normals) > 0
    assert creased[5:19, 11].all() and not creased[5:19, 12].any()
    assert not (line_art.line_art(flat, normals, crease_deg=50) > 0)[5:19, 11].any()
    ids = np.where(x < 16, 1, 2)
    assert (line_art.line_art(flat, None, ids) > 0)[5:19, 15].all()  # a seam between parts


def test_object_sheets_pick_rows_and_frame_each_view():
    assert [v[0] for v in object_sheet.default_views(4.5, 1.4)] == ["front", "three_quarter", "side", "back", "top"]
    assert [v[0] for v in object_sheet.default_views(0.6, 1.1)][-1] == "back"  # a teardrop stands: no top view
    views = object_sheet.default_views(4.5, 1.4)
    spans = [(1.8, 1.4), (3.5, 1.4), (4.5, 1.4), (1.8, 1.4), (4.5, 1.8)]
    layout = object_sheet.plan(1536, 1024, views, [("front", 0.0, 0.0)], spans)
    whole = [v for v in layout.views if v.kind == "body"]
    assert len({v.cell[1] for v in whole}) == 2  # a long car: two rows make bigger views than one
    assert [v.name for v in layout.views if v.kind == "detail"] == ["detail_front"]
    scale, shared = object_sheet.scales(whole, spans)
    assert not shared  # one scale would leave the front view small: each fills its cell
    for v, s, (sw, sh) in zip(whole, scale, spans):
        assert max(sw * s / v.size[0], sh * s / v.size[1]) == pytest.approx(object_sheet.FILL, abs=1e-6)
    square = [(1.0, 1.0)] * 4
    scale, shared = object_sheet.scales(whole[:4], square)
    assert shared and len(set(scale)) == 1  # alike views share one scale: a true turnaround
    assert object_sheet.parse_views("front, top, hood=30", "Views") == [
        ("front", 0.0, 0.0), ("top", 0.0, 90.0), ("hood", 30.0, 0.0)]
    with pytest.raises(Exception, match="unknown view 'roof'"):
        object_sheet.parse_views("roof", "Views")


def _png(record):
    return encode_png(np.zeros((8, 8, 3), np.uint8), {"characterforge": json.dumps(record)})


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_a_pack_of_each_kind(tmp_path, kind):
    job = {"prompt": "a thing", "subject": kind}
    results = {"sheet": _png({"job": job, "kind": kind, "appearance_model": "tiny (CLIP image embeddings)"}),
               "sheet_base": _png({}),
               "view_front": _png({"yaw": 0.0, "appearance": [1.0, 0.0, 0.0, 0.0]}),
               "view_side": _png({"yaw": 90.0, "appearance": [0.0, 2.0, 0.0, 0.0]})}
    if kind == kinds.HUMANOID:
        results["face_front"] = _png({"yaw": 0.0, "embedding": [1.0] + [0.0] * 511})
    else:
        results["detail_front"] = _png({"yaw": 0.0, "part": "head"})
    folder = identity_pack.create_pack(str(tmp_path), "Thing", results)
    pack = identity_pack.load_pack(folder)
    assert pack["kind"] == kind and pack["appearance_model"].startswith("tiny")
    mean = np.array([0.5, 1.0, 0, 0])
    assert pack["appearance"] == pytest.approx(mean * 1.5 / np.linalg.norm(mean), abs=1e-5)  # at the views' length
    assert (len(pack["faces"]), len(pack["details"])) == ((1, 0) if kind == kinds.HUMANOID else (0, 1))
    look = identity_pack.appearance(folder)
    assert look["views"] == [[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]
    assert len(identity_pack.identity_views(folder)) == 2


def test_packs_made_before_kinds_read_as_humanoid(tmp_path):
    folder = identity_pack.create_pack(str(tmp_path), "Old", {"sheet": _png({"job": {}}), "view_front": _png({})})
    manifest = json.load(open(f"{folder}/character.json"))
    for key in ("kind", "details", "appearance", "appearance_model"):
        manifest.pop(key)
    json.dump(manifest, open(f"{folder}/character.json", "w"))
    assert identity_pack.load_pack(folder)["kind"] == "humanoid" and identity_pack.appearance(folder) is None


def test_appearance_scores():
    assert scores.appearance([1, 0], [1, 0], {"front": [1, 0], "side": [0, 1]}) == {
        "status": "ok", "similarity": 1.0, "closest_view": "front", "closest_view_similarity": 1.0}
    assert scores.appearance(None, [1, 0])["status"] == "no_region"
    assert scores.appearance([1, 0], None)["status"] == "unavailable"
    pair = scores.pairwise_appearance({"a": [1, 0], "b": [1, 1], "c": None})
    assert pair["pairs"] == {"a|b": pytest.approx(0.7071, abs=1e-4)} and pair["min"] == pair["mean"]


def _b64():
    buf = io.BytesIO()
    from PIL import Image
    Image.new("RGB", (64, 64)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _sheet(**changes):
    spec = {"kind": "character_sheet", "prompt": "a red car", "width": 256, "height": 256, "subject": "object",
            "controls": {"depth": {"image": _b64()}, "normal": {"image": _b64()}, "lineart": {"image": _b64()}},
            "views": [{"name": "front", "kind": "body", "box": [0, 0, 128, 128]},
                      {"name": "detail_front", "kind": "detail", "box": [128, 0, 256, 128], "part": "Wheel"}]}
    spec.update(changes)
    return spec


def test_specs_of_objects():
    spec = validate_job(_sheet())
    assert spec["views"][0]["elevation"] == 0.0 and spec["views"][1]["part"] == "Wheel"
    assert {"depth_control", "draw"} <= needs(spec) and "normal_control" not in needs(spec)  # extras beside depth
    alone = validate_job(_sheet(controls={"lineart": {"image": _b64()}}))
    assert "line_control" in needs(alone)  # line art alone must be followed
    for change, field in (({"controls": {}}, "controls"),
                          ({"controls": {"openpose": {"image": _b64()}}}, "controls.openpose"),
                          ({"views": [{"name": "face_front", "kind": "face", "box": [0, 0, 64, 64]}]}, "views")):
        with pytest.raises(JobSpecError) as caught:
            validate_job(_sheet(**change))
        assert caught.value.field == field
    look = {"embedding": [0.1] * 16, "views": [[0.1] * 16, [0.2] * 8], "scale": 0.5}
    with pytest.raises(JobSpecError, match="identity.appearance.views"):
        validate_job(_sheet(identity={"images": [_b64()], "appearance": look}))
