"""Sheet geometry, identity packs (create, load, rename, pick faces, zip round trip, refusals)
and the LoRA dataset layouts, parsed back."""

import json
import os
import zipfile

import numpy as np
import pytest

from characterforge_addon.core.characters import identity_pack, lora_dataset, sheet_layout
from characterforge_addon.core.image_io import PNGError, decode_png, encode_png, read_png_text


# -- sheet layout -------------------------------------------------------------------------------

def test_default_sheet_has_five_body_views_above_four_faces_in_disjoint_cells():
    layout = sheet_layout.plan_sheet()
    assert (layout.width, layout.height) == (1536, 1024)
    body = [v for v in layout.views if v.kind == "body"]
    faces = [v for v in layout.views if v.kind == "face"]
    assert [v.name for v in body] == list(sheet_layout.BODY_VIEWS)
    assert len(faces) == 4 and all(f.cell[1] >= max(b.cell[3] for b in body) for f in faces)
    cells = [v.cell for v in layout.views]
    for i, a in enumerate(cells):
        assert 0 <= a[0] < a[2] <= 1536 and 0 <= a[1] < a[3] <= 1024
        for b in cells[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_sheet_options_are_checked():
    with pytest.raises(sheet_layout.SheetError, match="multiple of 64"):
        sheet_layout.plan_sheet(width=1000)
    with pytest.raises(sheet_layout.SheetError, match="at least"):
        sheet_layout.plan_sheet(width=256, body_views=["front"] * 1 + [("v%d" % i, 0) for i in range(12)])
    assert sheet_layout.parse_views("front, turned=30", "views") == [("front", 0.0), ("turned", 30.0)]
    with pytest.raises(sheet_layout.SheetError, match="unknown view"):
        sheet_layout.parse_views("sideways", "views")


def test_ortho_scale_fits_the_extent_into_the_cell():
    # a 2 x 1 box into a 100 x 300 cell: width limits, the scale spans the taller side
    scale = sheet_layout.ortho_scale(2.0, 1.0, 100, 300, fill=1.0)
    assert scale * 100 / 300 == pytest.approx(2.0)
    assert sheet_layout.ortho_scale(1.0, 3.0, 300, 100, fill=0.5) == pytest.approx(2 * 3.0 * 3)


def test_view_box_holds_points_and_mask_and_stays_in_its_cell():
    cell = (100, 0, 200, 300)
    mask = np.zeros((300, 100), bool)
    mask[50:60, 10:20] = True
    box = sheet_layout.view_box(cell, np.array([[150.0, 200.0], [160, 210]]), mask, pad=0.0)
    assert box == (110, 50, 161, 211)
    assert sheet_layout.inside(box, [[150, 200], [160, 210], [115, 55]]).all()
    big = sheet_layout.view_box(cell, np.array([[101.0, 1.0], [199, 299]]), None, pad=0.5)
    assert big == cell
    assert sheet_layout.view_box(cell) is None
    assert sheet_layout.face_box(cell, [[150, 100]] * 4) is None


# -- PNG reading ------------------------------------------------------------------------------

def test_decode_png_reads_every_filter_pillow_writes():
    Image = pytest.importorskip("PIL.Image")
    import io
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, (40, 50, 3)), axis=1).astype(np.uint8)
    for pixels in (smooth, rng.integers(0, 255, (33, 17, 4), dtype=np.uint8), smooth[..., 0]):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        assert np.array_equal(decode_png(buf.getvalue()), pixels)
        assert np.array_equal(decode_png(encode_png(pixels)), pixels)
    with pytest.raises(PNGError):
        decode_png(b"GIF89a")
    assert read_png_text(encode_png(smooth, {"a": "b", "ü": "ß€"})) == {"a": "b", "ü": "ß€"}


# -- identity packs ---------------------------------------------------------------------------

def result_png(shape, record):
    return encode_png(np.full(shape, 128, np.uint8), {"characterforge": json.dumps(record)})


def sheet_results():
    job = {"prompt": "a knight", "style": "anime", "negative_prompt": "blurry", "seed": 7, "profile": "tiny"}
    e1, e2 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    return {"sheet": result_png((64, 96, 3), {"job": job}), "sheet_base": result_png((32, 48, 3), {"job": job}),
            "view_front": result_png((40, 20, 3), {"job": job, "yaw": 0.0}),
            "view_side": result_png((40, 18, 3), {"job": job, "yaw": 90.0}),
            "face_front": result_png((16, 16, 3), {"job": job, "yaw": 0.0, "embedding": e1}),
            "face_side": result_png((16, 16, 3), {"job": job, "yaw": 90.0, "embedding": e2})}


def test_pack_round_trip_through_zip(tmp_path):
    layout = {"size": [96, 64], "views": [{"name": "front", "kind": "body", "yaw": 0.0, "cell": [0, 0, 48, 64]}]}
    folder = identity_pack.create_pack(str(tmp_path / "packs"), "Hero", sheet_results(), {"characterforge": "0.1.0"},
                                       layout=layout)
    assert identity_pack.sheet_layout_record(folder) == layout  # kept for painting a model from the sheet
    os.makedirs(os.path.join(folder, "texture"))
    open(os.path.join(folder, "texture", "Hero_body.png"), "wb").write(b"painted")
    manifest = identity_pack.load_pack(folder)
    assert manifest["prompt"] == "a knight" and manifest["seed"] == 7 and manifest["style"] == "anime"
    assert [v["name"] for v in manifest["views"]] == ["front", "side"]
    assert [f["name"] for f in manifest["faces"]] == ["face_front", "face_side"]
    assert manifest["embedding"] == pytest.approx([0.707107, 0.707107, 0.0])
    assert len(identity_pack.identity_faces(folder)) == 2
    identity_pack.pick_identity_faces(folder, ["face_side"])
    assert identity_pack.load_pack(folder)["embedding"] == [0.0, 1.0, 0.0]
    assert len(identity_pack.identity_faces(folder)) == 1

    zip_path = identity_pack.export_zip(folder, str(tmp_path / "hero.zip"))
    again = identity_pack.import_zip(zip_path, str(tmp_path / "packs"))  # the name is taken: Hero_2
    assert os.path.basename(again) == "Hero_2"
    copy = identity_pack.load_pack(again)
    assert copy["name"] == "Hero_2" and copy["faces"] == identity_pack.load_pack(folder)["faces"]
    assert identity_pack.sheet_layout_record(again) == layout
    for rel in ("sheet.png", "views/front.png", "faces/face_side.png", "texture/Hero_body.png"):
        assert open(os.path.join(again, rel), "rb").read() == open(os.path.join(folder, rel), "rb").read()
    renamed = identity_pack.rename_pack(again, "Villain")
    assert [n for n, _, problem in identity_pack.list_packs(str(tmp_path / "packs")) if not problem] == ["Hero", "Villain"]
    assert identity_pack.load_pack(renamed)["name"] == "Villain"


def test_damaged_packs_and_hostile_zips_are_refused(tmp_path):
    root = tmp_path / "packs"
    folder = identity_pack.create_pack(str(root), "Hero", sheet_results())
    os.remove(os.path.join(folder, "faces", "face_front.png"))
    with pytest.raises(identity_pack.PackError, match="face_front.png is missing"):
        identity_pack.load_pack(folder)
    (root / "Broken").mkdir()
    (root / "Broken" / "character.json").write_text("{not json")
    problems = dict((n, p) for n, _, p in identity_pack.list_packs(str(root)))
    assert "cannot be read" in problems["Broken"] and "missing" in problems["Hero"]

    manifest = json.loads((root / "Hero" / "character.json").read_text())
    manifest["sheet"] = "../../etc/passwd"
    (root / "Hero" / "character.json").write_text(json.dumps(manifest))
    with pytest.raises(identity_pack.PackError, match="not a file inside the pack"):
        identity_pack.load_pack(folder)

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("Hero/character.json", "{}")
        z.writestr("../outside.txt", "x")
    with pytest.raises(identity_pack.PackError, match="outside the pack folder"):
        identity_pack.import_zip(str(evil), str(root))
    assert not (tmp_path / "outside.txt").exists()
    not_zip = tmp_path / "pack.zip"
    not_zip.write_bytes(b"PK-not-really")
    with pytest.raises(identity_pack.PackError, match="not a readable zip"):
        identity_pack.import_zip(str(not_zip), str(root))
    with pytest.raises(identity_pack.PackError, match="already exists"):
        identity_pack.create_pack(str(root), "Hero", sheet_results())


# -- LoRA dataset -----------------------------------------------------------------------------

def test_dataset_layouts_parse_back(tmp_path):
    folder = identity_pack.create_pack(str(tmp_path / "packs"), "Hero", sheet_results())
    out = tmp_path / "dataset"
    summary = lora_dataset.export(folder, str(out), "hrknight", repeats=5, flip=True)
    assert summary["images"] == 8 and summary["mirrored"] == 4 and summary["captions"] == 8

    kohya = out / "kohya" / "img" / "5_hrknight"
    pngs = sorted(p.name for p in kohya.glob("*.png"))
    assert len(pngs) == 8
    for png in pngs:
        caption = (kohya / png.replace(".png", ".txt")).read_text()
        assert caption.startswith("hrknight, ") and "a knight" in caption
    side = (kohya / "Hero_side.txt").read_text()
    assert "side view from the left" in side and "side view from the right" in (kohya / "Hero_side_flip.txt").read_text()
    assert "close-up portrait" in (kohya / "Hero_face_front.txt").read_text()

    lines = [json.loads(line) for line in (out / "diffusers" / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all((out / "diffusers" / line["file_name"]).is_file() for line in lines)
    original = decode_png((out / "diffusers" / "Hero_front.png").read_bytes())
    mirrored = decode_png((out / "diffusers" / "Hero_front_flip.png").read_bytes())
    assert np.array_equal(original[:, ::-1], mirrored)
    assert summary["sizes"]["Hero_front"] == [20, 40]
    with pytest.raises(Exception, match="trigger word"):
        lora_dataset.export(folder, str(out), "bad/trigger")
