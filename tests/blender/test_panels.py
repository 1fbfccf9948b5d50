"""Every panel and list of the sidebar drawn in several scene states.

Headless Blender has no window, so no real UILayout exists to draw into; the panels' draw
functions run against a layout that checks each call the way Blender would: the property
exists on that data, the operator is registered and has the properties set on it, the icon is
one of Blender's, the list class is registered. A typo that would leave a hole in the real
panel fails here."""

import json
import types

import pytest

ICONS = None


def icons(bpy):
    global ICONS
    if ICONS is None:
        ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
    return ICONS


class OperatorProps:
    def __init__(self, rna):
        object.__setattr__(self, "_rna", rna)

    def __setattr__(self, name, value):
        assert name in self._rna.properties, f"operator {self._rna.identifier} has no property {name!r}"


class CheckingLayout:
    def __init__(self, bpy, calls):
        self.bpy, self.calls = bpy, calls
        self.enabled = self.active = True
        self.alert = False

    def _args(self, function, kw):
        known = self.bpy.types.UILayout.bl_rna.functions[function].parameters.keys()
        unknown = set(kw) - set(known)
        assert not unknown, f"UILayout.{function} takes no {sorted(unknown)}"

    def _icon(self, kw):
        icon = kw.get("icon")
        assert icon is None or icon in icons(self.bpy), f"unknown icon {icon!r}"

    def row(self, **kw):
        self._args("row", kw)
        return CheckingLayout(self.bpy, self.calls)

    def column(self, **kw):
        self._args("column", kw)
        return CheckingLayout(self.bpy, self.calls)

    def box(self):
        return CheckingLayout(self.bpy, self.calls)

    def separator(self, **kw):
        pass

    def label(self, text="", **kw):
        self._args("label", kw)
        self._icon(kw)
        self.calls.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        self._args("progress", {"factor": factor, "type": type, "text": text})
        assert 0.0 <= factor <= 1.0
        self.calls.append(("progress", text))

    def prop(self, data, name, **kw):
        self._args("prop", kw)
        self._icon(kw)
        if hasattr(data, "bl_rna"):
            assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        else:
            assert hasattr(data, name), f"{data!r} has no {name!r}"
        self.calls.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        self._args("prop_search", kw)
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.calls.append(("prop_search", name))

    def operator(self, idname, **kw):
        self._args("operator", kw)
        self._icon(kw)
        module, name = idname.split(".")
        op = getattr(getattr(self.bpy.ops, module), name)
        rna = op.get_rna_type()  # raises for an operator that is not registered
        self.calls.append(("operator", idname))
        return OperatorProps(rna)

    def menu(self, menu, **kw):
        self._args("menu", kw)
        self._icon(kw)
        assert hasattr(self.bpy.types, menu), f"menu {menu} is not registered"
        self.calls.append(("menu", kw.get("text", menu)))

    def template_icon(self, icon_value=0, scale=1.0):
        assert isinstance(icon_value, int)
        self.calls.append(("icon", icon_value))

    def template_list(self, listtype, list_id, data, propname, active_data, active_propname, **kw):
        self._args("template_list", kw)
        assert hasattr(self.bpy.types, listtype), f"list {listtype} is not registered"
        assert data.bl_rna.properties[propname].type == "COLLECTION"
        assert active_propname in active_data.bl_rna.properties
        self.calls.append(("list", listtype))
        cls = getattr(self.bpy.types, listtype)
        for index, item in enumerate(getattr(data, propname)):
            cls.draw_item(None, self.bpy.context, CheckingLayout(self.bpy, self.calls), data, item, 0, active_data,
                          active_propname, index)


def draw_all(bpy):
    """Draw every CharacterForge panel; returns what was drawn, per panel."""
    from characterforge_addon.blender.ui import backend_panel, panel
    drawn = {}
    for cls in panel.classes + backend_panel.classes:
        if issubclass(cls, bpy.types.Panel):
            calls = []
            cls.draw(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)), bpy.context)
            drawn[cls.bl_label] = calls
    return drawn


def test_panels_draw_in_an_empty_scene(bpy, scene):
    drawn = draw_all(bpy)
    assert set(drawn) == {"Backend", "Characters", "Pose", "Control Maps", "Shot", "Results"}
    assert ("label", "Results appear here after Generate") in drawn["Results"]
    assert ("operator", "characterforge.add_rig") in drawn["Pose"]
    assert ("operator", "characterforge.make_sheet") in drawn["Characters"]
    assert ("operator", "characterforge.setup_backend") in drawn["Backend"]
    assert ("operator", "characterforge.generate") in drawn["Shot"]


def test_panels_draw_with_a_rig_characters_a_result_a_job_and_a_doctor_report(bpy, scene, tmp_path, monkeypatch):
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.rig import rig
    from characterforge_addon.blender.backend import operators
    from characterforge_addon.core.characters import identity_pack
    from characterforge_addon.core.image_io import encode_png
    import numpy as np
    hero = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT")
    bpy.context.view_layer.objects.active = hero
    # a character pack and a damaged one in the characters folder
    monkeypatch.setenv("CHARACTERFORGE_CHARACTERS", str(tmp_path / "chars"))
    png = encode_png(np.zeros((8, 8, 3), np.uint8), {"characterforge": json.dumps({"job": {"prompt": "p"}})})
    identity_pack.create_pack(str(tmp_path / "chars"), "Knight", {"sheet": png, "face_front": png, "view_front": png})
    (tmp_path / "chars" / "Broken").mkdir()
    characters.refresh(scene)
    s = scene.characterforge
    assert [c.name for c in s.characters] == ["Broken", "Knight"]
    s.job_state, s.job_message, s.job_progress = "running", "sheet 3/30", 0.1
    preview = bpy.data.images.new("CF preview", 4, 4)
    monkeypatch.setitem(operators.doctor, "report", {"ready": False, "family": "sdxl", "cards": {
        "native": {"12 GB": "model_offload", "24 GB": "gpu"}, "fp8": {"12 GB": "gpu", "24 GB": "gpu"}}, "device": {
        "device": "cpu", "name": "CPU (x86_64)", "torch_build": "CPU only (+cpu)", "dtype": "float32", "free_gb": 20.0,
        "total_gb": 32.0, "findings": [{"level": "MISSING", "message": "an NVIDIA GPU RTX is present but torch is +cpu",
                                        "fix": "Backend > Set Up Backend again with GPU 'nvidia'"}]}, "roles": [
        {"role": "base", "status": "missing", "core": True, "size": "6.9 GB", "looked_in": "/x", "fix": "hf download a/b",
         "source": "repo", "licence": "CreativeML Open RAIL++-M"},
        {"role": "ip_adapter_faceid", "status": "missing", "core": False, "size": "1.1 GB", "looked_in": "/y",
         "fix": "hf download c/d", "source": "repo", "licence": "non-commercial research use",
         "needed_for": "identity from a face embedding"},
        {"role": "vae", "status": "present", "core": True, "fix": ""}]})
    bpy.context.window_manager.characterforge_download_roles = "ip_adapter_faceid"
    for active in (0, 1):
        s.active_character = active
        drawn = draw_all(bpy)
    assert ("list", "CHARACTERFORGE_UL_faces") in drawn["Characters"]
    assert ("operator", "characterforge.toggle_identity_face") in drawn["Characters"]
    assert ("operator", "characterforge.paint_model") in drawn["Characters"]  # the rig is selected: its meshes
    assert ("operator", "characterforge.remove_model_paint") in drawn["Characters"]
    assert any(c[0] == "icon" for c in drawn["Shot"])
    bpy.data.images.remove(preview)
    assert ("progress", "sheet 3/30") in drawn["Shot"] and ("operator", "characterforge.cancel_job") in drawn["Shot"]
    assert ("label", "hf download a/b") in drawn["Backend"]
    assert ("label", "an NVIDIA GPU RTX is present but torch is +cpu") in drawn["Backend"]
    assert ("label", "sdxl: 12 GB model offload (fp8: gpu), 24 GB gpu") in drawn["Backend"]
    assert ("operator", "characterforge.toggle_download_role") in drawn["Backend"]
    assert ("prop", "characterforge_accept_non_commercial") in drawn["Backend"]
    assert ("operator", "characterforge.download_models") in drawn["Backend"]
    assert not any(c == ("label", "Looked in ") for c in drawn["Backend"])  # present roles are not listed
    assert ("operator", "characterforge.apply_pose") in drawn["Pose"]
    # each rig's character and prompt, compositing and expressions in the Shot section
    assert ("prop_search", "character") in drawn["Shot"] and ("operator", "characterforge.make_shot") in drawn["Shot"]
    assert ("operator", "characterforge.make_expression") in drawn["Shot"]
    s.expression, s.composite_mode = "CUSTOM", "CUTOUT"
    drawn = draw_all(bpy)
    assert ("prop", "expression_custom") in drawn["Shot"] and ("prop", "harmonize") in drawn["Shot"]

    # a result plane with scores: its lines and Regenerate show under Generate
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    plane["characterforge_job"] = json.dumps({"prompt": "p", "seed": 1})
    plane["characterforge_scores"] = json.dumps({"identity": {"status": "ok", "similarity": 0.61, "copy_paste": False}})
    s.job_state = "completed"
    drawn = draw_all(bpy)
    assert ("label", "Identity 0.61") in drawn["Shot"] and ("operator", "characterforge.regenerate") in drawn["Shot"]
    assert ("prop", "draft") in drawn["Shot"] and ("label", "A draft: quick and rough") not in drawn["Shot"]
    plane["characterforge_draft"] = True  # a draft offers Regenerate as Final
    assert ("label", "A draft: quick and rough") in draw_all(bpy)["Shot"]


def test_the_checking_layout_catches_typos(bpy, scene):
    layout = CheckingLayout(bpy, [])
    with pytest.raises(AssertionError):
        layout.prop(scene.characterforge, "promt")
    with pytest.raises(AssertionError):
        layout.label(text="x", icon="NO_SUCH_ICON")
    with pytest.raises(Exception):
        layout.operator("characterforge.no_such_operator")
    with pytest.raises(AssertionError):
        layout.operator("characterforge.toggle_identity_face").indx = 1
    with pytest.raises(AssertionError):
        layout.row(aligned=True)


def test_results_switch_variants_and_the_status_bar_shows_the_job(bpy, scene):
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.ui import panel
    shot = planes.shot_collection(scene, "Shot 1")
    made = []
    for i in range(3):
        bpy.ops.mesh.primitive_plane_add()
        obj = bpy.context.active_object
        obj.name = f"Shot 1_seed{i}"
        for coll in list(obj.users_collection):
            coll.objects.unlink(obj)
        shot.objects.link(obj)
        obj["characterforge_scores"] = json.dumps({"identity": {"status": "ok", "similarity": 0.5 + i / 10}})
        made.append(obj)
    assert bpy.ops.characterforge.show_result(name="Shot 1_seed1") == {"FINISHED"}
    assert [o.hide_render for o in made] == [True, False, True] and bpy.context.active_object == made[1]
    drawn = draw_all(bpy)["Results"]
    assert ("operator", "characterforge.show_result") in drawn and ("label", "Identity 0.60") in drawn
    assert not any(kind == "label" and str(text).startswith("Colours:") for kind, text in drawn)  # AgX: undone
    assert bpy.ops.characterforge.show_result(name="Shot 1_seed1", hide=True) == {"FINISHED"}
    assert all(o.hide_render and o.hide_viewport for o in made)  # every variant hidden: the 3D scene shows
    scene.view_settings.view_transform = "False Color"
    drawn = draw_all(bpy)["Results"]
    assert any(kind == "label" and str(text).startswith("Colours: the False Color view") for kind, text in drawn)
    calls = []
    scene.characterforge.job_state, scene.characterforge.job_message = "running", "upscale: tile 2 of 12 3/9"
    panel.status_bar(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)), bpy.context)
    assert calls == [("label", "CharacterForge: upscale: tile 2 of 12 3/9")]
    scene.characterforge.job_state = "completed"
    calls.clear()
    panel.status_bar(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)), bpy.context)
    assert calls == []


def test_esc_cancels_a_running_job_and_passes_through_otherwise(bpy, scene):
    keymap = bpy.context.window_manager.keyconfigs.addon.keymaps["Window"]
    items = [i for i in keymap.keymap_items if i.idname == "characterforge.cancel_job"]
    assert [(i.type, i.value) for i in items] == [("ESC", "PRESS")]
    assert not bpy.ops.characterforge.cancel_job.poll()  # no job: Esc does what it always did


def test_the_profile_chooser_lists_each_profile_with_its_family_and_jobs_use_the_choice(bpy, scene, tmp_path,
                                                                                          monkeypatch):
    from characterforge_addon.blender.generation import profile_chooser
    from characterforge_addon.blender import preferences
    monkeypatch.setenv("CHARACTERFORGE_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "profiles").mkdir(parents=True)
    (tmp_path / "data" / "profiles" / "mine.toml").write_text('name = "mine"\nfamily = "qwen_edit"\n')
    (tmp_path / "data" / "profiles" / "broken.toml").write_text("name = [")
    drawn = draw_all(bpy)
    assert ("menu", "sdxl (sdxl)") in drawn["Shot"] and ("menu", "sdxl (sdxl)") in drawn["Characters"]
    calls = []
    profile_chooser.CHARACTERFORGE_MT_profiles.draw(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)),
                                                    bpy.context)
    assert calls.count(("operator", "characterforge.use_profile")) == len(profile_chooser.offered(preferences.get()))
    names = {(n, f) for n, f, _ in profile_chooser.offered(preferences.get())}
    assert {("mine", "qwen_edit"), ("tiny-qwen-edit", "qwen_edit"), ("qwen-edit", "qwen_edit"), ("sdxl", "sdxl")} <= names
    assert bpy.ops.characterforge.use_profile(name="tiny-qwen-edit") == {"FINISHED"}
    assert preferences.job_profile(bpy.context) == "tiny-qwen-edit"
    assert ("menu", "tiny-qwen-edit (qwen_edit)") in draw_all(bpy)["Shot"]
    bpy.ops.characterforge.use_profile(name="gone")
    assert ("label", "No profile named gone: choose one, or add it to the data folder's profiles") in draw_all(bpy)["Shot"]
    bpy.ops.characterforge.use_profile(name="")
    assert preferences.job_profile(bpy.context) == "sdxl"
