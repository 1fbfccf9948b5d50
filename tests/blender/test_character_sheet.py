"""Character sheets in Blender: layout geometry from the rig's projection, the user's scene left
alone, and end to end through the real backend (tiny profile) to an identity pack, a sheet
plane, pack import/export and a LoRA dataset from the operators."""

import json
import os
import zipfile

import numpy as np
import pytest


def sheet_rig(bpy, pose="A_POSE"):
    from characterforge_addon.blender.rig import posing, rig
    hero = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0.5, 0.3, 0.0))
    posing.apply_library_pose(bpy.context, hero, pose)
    return hero


def people_by_view(folder):
    from characterforge_addon.core.rig import keypoints
    with open(os.path.join(folder, "openpose.json")) as f:
        return keypoints.from_openpose_dict(json.load(f))[2]  # (width, height, people)


@pytest.mark.smoke
@pytest.mark.parametrize("pose", ["A_POSE", "WALKING"])
def test_each_box_holds_its_views_keypoints_and_no_others(bpy, scene, tmp_path, pose):
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import sheet_layout
    from characterforge_addon.core.image_io import decode_png
    hero = sheet_rig(bpy, pose)
    hero.rotation_euler = (0, 0, 0.7)  # the sheet follows the character's own front, not the world's
    scenes, objects = len(bpy.data.scenes), sorted(o.name for o in bpy.data.objects)
    layout = sheet_layout.plan_sheet(768, 512)
    record = render_sheet(bpy.context, hero, str(tmp_path), layout)

    assert len(bpy.data.scenes) == scenes and sorted(o.name for o in bpy.data.objects) == objects
    assert set(record["files"]) == {"openpose.png", "openpose.json", "depth.png"}
    people = people_by_view(str(tmp_path))
    views = record["views"]
    assert len(people) == len(views) == 9
    for i, (view, person) in enumerate(zip(views, people)):
        box = view["box"]
        cell = view["cell"]
        assert cell[0] <= box[0] < box[2] <= cell[2] and cell[1] <= box[1] < box[3] <= cell[3]
        mine = np.concatenate([p[p[:, 2] > 0, :2] for p in person.parts().values()])
        assert len(mine) >= 10, view["name"]
        assert sheet_layout.inside(box, mine).all(), view["name"]
        for other in people[:i] + people[i + 1:]:
            theirs = np.concatenate([p[p[:, 2] > 0, :2] for p in other.parts().values()])
            assert not sheet_layout.inside(box, theirs).any(), view["name"]
    by_name = {v["name"]: (v, p) for v, p in zip(views, people)}
    # a back view shows no face; the front one does; face close-ups show the face large
    assert (by_name["back"][1].face[:, 2] == 0).all() and (by_name["front"][1].face[:, 2] > 0).sum() > 50
    front_face = by_name["face_front"][1].face
    assert np.ptp(front_face[front_face[:, 2] > 0, 0]) > 0.4 * (views[5]["cell"][2] - views[5]["cell"][0])
    # the character's pixels in the depth sheet lie inside the boxes
    depth = decode_png(open(tmp_path / "depth.png", "rb").read())
    inside_any = np.zeros(depth.shape, bool)
    for view in views:
        x0, y0, x1, y1 = view["box"]
        inside_any[y0:y1, x0:x1] = True
    assert depth[~inside_any].max() == 0 and depth[inside_any].max() > 200


def test_body_views_share_one_scale(bpy, scene, tmp_path):
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import sheet_layout
    hero = sheet_rig(bpy)
    record = render_sheet(bpy.context, hero, str(tmp_path), sheet_layout.plan_sheet(768, 512, face_views=()),
                          depth=False)
    people = people_by_view(str(tmp_path))
    heights = [np.ptp(p.body[p.body[:, 2] > 0, 1]) for p in people]  # nose/ears to ankles, pixels
    assert max(heights) - min(heights) < 0.06 * max(heights)
    assert "depth.png" not in record["files"]


SEVEN = ("front", "three_quarter", "side", "three_quarter_back", "back", "side_right", "three_quarter_right")


def _fills(record):
    return [(v["box"][3] - v["box"][1]) / (v["cell"][3] - v["cell"][1]) for v in record["views"] if v["kind"] == "body"]


@pytest.mark.smoke
def test_the_default_sheet_fills_its_cells_and_leaves_the_rig_alone(bpy, scene, tmp_path):
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.rig import posing
    from characterforge_addon.blender.characters.sheet import render_sheet
    hero = sheet_rig(bpy)  # the user left the rig in an A-pose
    channels, objects = posing.pose_channels(hero), sorted(o.name for o in bpy.data.objects)
    wrist = hero.pose.bones["hand.L"].head.copy()
    record = render_sheet(bpy.context, hero, str(tmp_path), characters.layout_from(bpy.context.scene.characterforge))
    assert record["pose"] == "relaxed" and record["fill"] >= 0.8 and not record["advice"], record["fill"]
    assert round(min(_fills(record)), 3) == record["fill"]
    assert json.load(open(tmp_path / "sheet.json"))["fill"] == record["fill"]
    bpy.context.view_layer.update()
    assert posing.pose_channels(hero) == channels and (hero.pose.bones["hand.L"].head - wrist).length < 1e-6
    assert sorted(o.name for o in bpy.data.objects) == objects


@pytest.mark.parametrize("pose, views", [("relaxed", None), ("a_pose", None), ("t_pose", None),
                                         ("current", None), ("relaxed", 3), ("relaxed", 7), ("a_pose", 3)])
def test_body_views_fill_as_much_as_the_pose_allows(bpy, scene, tmp_path, pose, views):
    """Each body view as tall as the widest view lets it be: at least 80 % of the cell, or the
    width is what stops it (some view spans its cell's width) and the advice says what helps."""
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import sheet_layout
    hero = sheet_rig(bpy)
    body = {None: sheet_layout.BODY_VIEWS, 3: ("front", "side", "back"), 7: SEVEN}[views]
    record = render_sheet(bpy.context, hero, str(tmp_path), sheet_layout.plan_sheet(1536, 1024, body), pose=pose)
    fills = _fills(record)
    print(pose, len(body), f"fill {record['fill']:.3f}")
    assert max(fills) - min(fills) < 0.08  # one scale for every body view
    if record["fill"] < 0.8:
        widest = max((v["box"][2] - v["box"][0]) / (v["cell"][2] - v["cell"][0]) for v in record["views"])
        assert widest > 0.9 and "fewer body views, a wider sheet" in record["advice"], (widest, record["advice"])
    else:
        assert record["advice"] == ""
    if pose == "relaxed" and len(body) <= 5:
        assert record["fill"] >= 0.8


def test_bad_sheet_settings_are_refused_with_the_fix(bpy, scene, tmp_path):
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.core.errors import UserError
    s = scene.characterforge
    s.sheet_width = 1000
    with pytest.raises(UserError, match="multiple of 64"):
        characters.layout_from(s)
    s.sheet_width, s.sheet_body_views = 1024, "front, upside"
    with pytest.raises(UserError, match="unknown view 'upside'"):
        characters.layout_from(s)
    with pytest.raises(UserError, match="no OpenPose rig"):
        characters.sheet_rig(bpy.context)
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import sheet_layout
    with pytest.raises(UserError, match="unknown sheet pose 'dab'.*relaxed"):
        render_sheet(bpy.context, sheet_rig(bpy), str(tmp_path), sheet_layout.plan_sheet(512, 512), pose="dab")


def test_sheet_job_end_to_end_to_pack_plane_zip_and_dataset(bpy, scene, tmp_path, backend_env, monkeypatch):
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.generation import jobs, planes
    from characterforge_addon.core.characters import identity_pack
    monkeypatch.setenv("CHARACTERFORGE_CHARACTERS", str(tmp_path / "characters"))
    hero = sheet_rig(bpy)
    bpy.context.view_layer.objects.active = hero
    s = scene.characterforge
    s.character_name, s.prompt, s.steps, s.random_seed, s.seed = "Knight", "a knight", 2, False, 5
    s.sheet_width, s.sheet_height, s.sheet_upscale = 512, 256, 1.5
    s.results_dir = str(tmp_path / "results")
    assert bpy.ops.characterforge.make_sheet() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message

    folder = str(tmp_path / "characters" / "Knight")
    pack = identity_pack.load_pack(folder)
    assert len(pack["views"]) == 5 and len(pack["faces"]) == 4 and len(pack["embedding"]) == 512
    layout = identity_pack.sheet_layout_record(folder)  # kept for painting a model from the sheet
    assert layout["character"] == "Hero" and all(v["camera"]["ortho_scale"] > 0 for v in layout["views"])
    assert [c.name for c in s.characters] == ["Knight"] and len(s.characters[0].faces) == 4
    plane = bpy.data.collections[characters.SHEETS_COLLECTION].objects["Knight sheet"]
    assert plane["characterforge_character"] == "Knight"
    assert planes.score_lines(plane)[0].startswith("Identity across views: mean ")  # 4 faces compared
    bpy.context.view_layer.update()
    w, h = plane.dimensions.x, plane.dimensions.y  # local axes: the plane is stood up by its rotation
    assert w / h == pytest.approx(768 / 384, rel=0.01)  # the upscaled sheet's aspect

    assert bpy.ops.characterforge.toggle_identity_face(index=1) == {"FINISHED"}  # written into the pack at once
    assert not s.characters[0].faces[1].use
    assert [f["use_as_identity"] for f in identity_pack.load_pack(folder)["faces"]] == [True, False, True, True]

    zip_path = str(tmp_path / "knight.zip")
    assert bpy.ops.characterforge.export_character(filepath=zip_path) == {"FINISHED"}
    assert zipfile.ZipFile(zip_path).namelist()
    assert bpy.ops.characterforge.import_character(filepath=zip_path) == {"FINISHED"}
    assert [c.name for c in s.characters] == ["Knight", "Knight_2"]

    s.dataset_trigger = "knghtcf"
    out = tmp_path / "dataset"
    assert bpy.ops.characterforge.export_dataset(directory=str(out)) == {"FINISHED"}
    kohya = out / "kohya" / "img" / "10_knghtcf"
    assert len(list(kohya.glob("*.png"))) == 18 and len(list(kohya.glob("*.txt"))) == 18
    with pytest.raises(RuntimeError, match="'Knight' already exists"):  # refused before any work
        bpy.ops.characterforge.make_sheet()

    # a posed shot keeps the character: its picked faces as references, its embedding for the score
    scene.render.resolution_x = scene.render.resolution_y = 128
    s.active_character, s.use_character, s.shot = 0, True, "With identity"
    assert bpy.ops.characterforge.generate() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message
    shot = next(iter(bpy.data.collections["CharacterForge Shots"].children["With identity"].objects))
    job = json.loads(shot["characterforge_job"])
    assert job["identity"]["references"] == 3  # 4 faces, one switched off
    identity = json.loads(shot["characterforge_scores"])["identity"]
    assert identity["status"] == "ok" and "closest_reference" in identity
    assert shot["characterforge_identity"] == identity["similarity"]
    assert planes.score_lines(shot)[0].startswith("Identity ")

    # the character's LoRA, trained in the backend from its pack, then used by its jobs
    s.dataset_trigger, s.train_steps, s.train_rank, s.train_resolution = "", 10, 4, 128
    assert bpy.ops.characterforge.train_lora() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message
    lora = identity_pack.load_pack(folder)["lora"]
    assert lora["trigger"] == "Knight" and lora["rank"] == 4 and lora["weight"] == 0.8
    assert os.path.isfile(os.path.join(folder, lora["file"])) and len(lora["samples"]) == 5
    assert s.characters[0].lora == "Knight" and "rank 4, 10 steps" in s.characters[0].lora_info
    assert bpy.ops.characterforge.show_lora_samples() == {"FINISHED"}
    assert bpy.data.images.get("Knight LoRA sample_00010") is not None
    assert bpy.ops.characterforge.set_lora_weight(weight=0.5) == {"FINISHED"}
    s.shot = "With LoRA"
    assert bpy.ops.characterforge.generate() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message
    shot = next(iter(bpy.data.collections["CharacterForge Shots"].children["With LoRA"].objects))
    assert json.loads(shot["characterforge_job"])["identity"]["lora"] == {
        "sha256": lora["sha256"], "name": "Knight", "weight": 0.5, "trigger": "Knight"}
    assert bpy.ops.characterforge.rename_character(new_name="Knight_renamed") == {"FINISHED"}
    assert [c.name for c in s.characters] == ["Knight_2", "Knight_renamed"]
