import json

import pytest

from characterforge_addon.core.batch import batch_plan
from characterforge_addon.core.errors import UserError


@pytest.mark.parametrize("value,frames", [("1-3", [1, 2, 3]), ("7", [7]), (5, [5]), ([9, 1, 9], [1, 9])])
def test_frames(value, frames):
    assert batch_plan.parse_frames(value, "b.toml") == frames


@pytest.mark.parametrize("value", ["3-1", "a-b", [], True, 1.5])
def test_bad_frames(value):
    with pytest.raises(UserError, match="b.toml"):
        batch_plan.parse_frames(value, "b.toml")


def test_plan_and_units(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[batch]\nframes = "1-2"\ncameras = ["A", "B b"]\nseeds = [5, 6]\n[shot]\nprompt = "x"\n')
    plan = batch_plan.load_plan(str(path))
    units = batch_plan.units(plan, plan["cameras"])
    assert len(units) == 8 and units[0] == ("A", 1, 5, "A/frame_0001/seed_5")
    assert units[-1][3] == "B_b/frame_0002/seed_6"
    path.write_text('[batch]\ngenerate = false\nframes = 3\n')
    plan = batch_plan.load_plan(str(path))
    assert batch_plan.units(plan, ["Cam"]) == [("Cam", 3, None, "Cam/frame_0003")]


@pytest.mark.parametrize("text,message", [
    ("[batch", "not valid TOML"),
    ("[batch]\nseeds = [-1]\n[shot]\nprompt = 'x'", "seeds"),
    ("[batch]\ncameras = 'A'\n[shot]\nprompt = 'x'", "cameras"),
    ("[batch]\nbackends = ['ftp://x']\n[shot]\nprompt = 'x'", "backends"),
    ("[batch]\n", "needs a prompt"),
])
def test_bad_plans(tmp_path, text, message):
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        batch_plan.load_plan(str(path))


def test_manifest_counts_a_unit_only_while_its_files_exist(tmp_path):
    m = batch_plan.Manifest(str(tmp_path))
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "a.png").write_bytes(b"x")
    m.add("u", ["u/a.png"])
    again = batch_plan.Manifest(str(tmp_path))
    assert again.finished("u", str(tmp_path)) and not again.finished("v", str(tmp_path))
    (tmp_path / "u" / "a.png").unlink()
    assert not again.finished("u", str(tmp_path))
    (tmp_path / "manifest.json").write_text("{broken")
    assert batch_plan.Manifest(str(tmp_path)).done == {}
    assert json.loads(json.dumps(again.done)) == {"u": ["u/a.png"]}
