"""The relight's pure parts: the light reference's PNG coding, the re-shading of a picture's
luminance by it (inside its region only), how its agreement with a light is measured, a
light's direction in words, the uncompressed EXR reader, and the relight spec's checks that
both sides run (a light reference from another camera refused with the field and the fix)."""

import struct

import numpy as np
import pytest

from characterforge_addon.core.batch import batch_plan
from characterforge_addon.core.errors import UserError
from characterforge_addon.core.maps import exr
from characterforge_addon.core.shots import lighting
from characterforge_addon.core.spec.job_spec import JobSpecError, needs, same_view

H, W = 96, 128


def lit(side):
    """A light falling off across the picture from `side`, in Blender's units."""
    ramp = np.linspace(2.0, 0.1, W) if side == "left" else np.linspace(0.1, 2.0, W)
    return np.repeat(np.tile(ramp, (H, 1))[..., None], 3, axis=2)


def textured(light, cell=4):
    """A picture of a textured surface (albedo 0.2-0.7 in `cell`-pixel cells) lit by `light`."""
    rng = np.random.default_rng(1)
    cells = rng.uniform(0.2, 0.7, (H // cell, W // cell))
    albedo = np.kron(cells, np.ones((cell, cell)))[..., None] * np.array([1.0, 0.9, 0.8])
    return lighting.linear_to_srgb(albedo * light / 2.0)


def test_the_light_reference_travels_as_a_png_with_its_coverage():
    light, coverage = lit("left"), np.ones((H, W), bool)
    coverage[:10] = False  # the sky: no surface
    white = lighting.white_point(light, coverage)
    assert white == pytest.approx(np.percentile(lighting.luminance(light)[coverage], 99.5))
    rgba = lighting.light_picture(light, coverage, white)
    back, seen = lighting.light_from_picture(rgba)
    assert rgba.dtype == np.uint8 and rgba.shape == (H, W, 4) and np.array_equal(seen, coverage)
    assert np.abs(back * white - np.minimum(light, white))[coverage].max() < 0.01 * white  # sRGB: fine in shadows
    assert lighting.white_point(np.zeros((H, W, 3)), coverage) == 0.0
    with pytest.raises(ValueError, match="white must be above 0"):
        lighting.light_picture(light, coverage, 0.0)


def test_reshading_makes_the_picture_follow_the_new_light_inside_its_region_only():
    picture = textured(lit("right"))
    new = lit("left")
    region = np.zeros((H, W))
    region[16:80, 24:104] = 1.0
    inside = region > 0
    before = lighting.agreement(picture, new, inside)
    out, record = lighting.reshade(picture, new, np.ones((H, W), bool), region, 1.0)
    after = lighting.agreement(out, new, inside)
    truth = lighting.agreement(textured(new), new, inside)  # the same surface really lit by the new light
    assert before < -0.3 and after > 0.5 and after > truth - 0.25
    assert np.array_equal(out[~inside], picture[~inside]) and record["changed"]
    # the texture survives: the cells' contrast against their neighbours is kept
    detail = lambda p: np.abs(np.diff(lighting.luminance(lighting.srgb_to_linear(p))[inside].reshape(64, 80), axis=1))
    assert detail(out).mean() > 0.5 * detail(picture).mean()
    half, _ = lighting.reshade(picture, new, np.ones((H, W), bool), region, 0.5)
    assert before < lighting.agreement(half, new, inside) < after
    # where no surface was hit the light says nothing: those pixels stay
    coverage = np.ones((H, W), bool)
    coverage[:, :64] = False
    out, _ = lighting.reshade(picture, new, coverage, region, 1.0)
    assert np.array_equal(out[:, :64], picture[:, :64]) and not np.array_equal(out[inside & coverage],
                                                                              picture[inside & coverage])
    untouched, record = lighting.reshade(picture, new, np.ones((H, W), bool), np.zeros((H, W)), 1.0)
    assert np.array_equal(untouched, picture) and not record["changed"]


def rods(direction):
    """Upright rods 10 pixels wide (as limbs are), each its own colour, lit by a distant light from
    `direction` (camera space) and a fill: (picture, light, (normals, where), where the rods are)."""
    xs = np.arange(W)
    across = (xs - (xs // 16 * 16 + 8)) / 5.0
    on_rod = np.abs(across) < 1
    inside = np.tile(on_rod, (H, 1))
    inside[:8] = inside[-8:] = False
    normals = np.zeros((H, W, 3))
    normals[..., 0] = np.where(on_rod, across, 0.0)
    normals[..., 2] = np.sqrt(np.clip(1 - normals[..., 0] ** 2, 0, 1))
    l = np.asarray(direction, float) / np.linalg.norm(direction)
    light = np.repeat((np.maximum(normals @ l, 0) * 1.5 + 0.35)[..., None], 3, axis=2) * inside[..., None]
    rng = np.random.default_rng(3)
    albedo = np.tile(rng.uniform(0.2, 0.7, W // 16)[xs // 16], (H, 1))[..., None]
    albedo = albedo * (0.85 + 0.3 * rng.random((H, W, 1)))
    return lighting.linear_to_srgb(albedo * light / 2.0), light, (normals, inside), inside


def test_the_old_shading_read_off_the_geometry_keeps_the_colours():
    """Thin limbs: a blur cannot tell their shading from their colours, their normals can."""
    before, _, normals, inside = rods((0.8, 0.1, 0.6))
    truth, new, _, _ = rods((-0.7, 0.3, 0.6))
    real = lighting.luminance(lighting.srgb_to_linear(truth))[inside]

    def like_truth(image):
        return np.corrcoef(lighting.luminance(lighting.srgb_to_linear(image))[inside], real)[0, 1]
    each = [inside & (np.arange(W) // 16 == k)[None, :] for k in range(W // 16)]
    geometry, record = lighting.reshade(before, new, inside, inside.astype(float), 1.0, normals)
    per_rod, _ = lighting.reshade(before, new, inside, inside.astype(float), 1.0, normals, each)
    blurred, _ = lighting.reshade(before, new, inside, inside.astype(float), 1.0)
    assert record["old_shading"] == "the geometry's normals"
    assert like_truth(geometry) > 0.97 and like_truth(per_rod) > 0.97  # each rod's colour kept
    assert like_truth(blurred) < 0.6 and like_truth(before) < 0
    back, shown = lighting.normals_from_picture(lighting.normal_picture(normals[0], inside))
    assert np.array_equal(shown, inside) and np.abs(back - normals[0])[inside].max() < 0.02


def test_a_coloured_light_tints_and_a_feathered_edge_blends():
    picture = np.full((H, W, 3), 128, np.uint8)
    warm = lit("left") * np.array([1.0, 0.7, 0.4])
    region = np.zeros((H, W))
    region[:, 40:90] = 1.0
    region[:, 30:40] = np.linspace(0, 1, 10)
    out, _ = lighting.reshade(picture, warm, np.ones((H, W), bool), region, 1.0)
    assert (out[:, 50:80, 0].astype(int) - out[:, 50:80, 2]).mean() > 10  # warmer: more red than blue
    step = np.abs(np.diff(out[48, 28:42].astype(int), axis=0)).max(axis=-1)
    assert step.max() < 20  # no hard seam where the region's feather starts


def test_agreement_is_none_where_it_cannot_be_measured():
    picture = textured(lit("left"))
    assert lighting.agreement(picture, lit("left"), np.zeros((H, W), bool)) is None
    assert lighting.agreement(picture, np.ones((H, W, 3)), np.ones((H, W), bool)) is None
    assert lighting.agreement(picture, lit("left"), np.ones((H, W), bool)) > 0.7  # the texture is not light


@pytest.mark.parametrize("direction, words", [
    ((-0.7, 0.5, 0.5), "from the upper left"), ((0.9, 0.0, 0.3), "from the right"),
    ((0.0, 0.9, 0.3), "from above"), ((0.0, -0.9, 0.3), "from below"), ((0.0, 0.1, 1.0), "from the front"),
    ((0.0, 0.0, -1.0), "from behind (back light)"), ((0.5, 0.5, -0.8), "from behind, upper right (back light)"),
])
def test_directions_in_words(direction, words):
    assert lighting.direction_words(direction) == words


def test_where_a_character_stands():
    mask = np.zeros((10, 30), bool)
    mask[:, 2:6] = True
    assert lighting.place_words(mask) == "on the left"
    assert lighting.place_words(np.roll(mask, 22, axis=1)) == "on the right"
    assert lighting.place_words(np.zeros((4, 4), bool)) == "out of the picture"


def blur_matches_a_gaussian():
    spike = np.zeros((101, 101))
    spike[50, 50] = 1.0
    out = lighting.blur(spike, 6.0)
    return out.sum(), (out.sum(axis=1) * (np.arange(101) - 50) ** 2).sum()


def test_the_blur_keeps_the_light_and_spreads_it_as_a_gaussian():
    total, variance = blur_matches_a_gaussian()
    assert total == pytest.approx(1.0)
    assert variance == pytest.approx(36.0, rel=0.2)  # whole-pixel boxes: close, not exact
    weights = np.zeros((20, 20))
    weights[:, :10] = 1.0
    values = np.where(weights > 0, 5.0, 100.0)
    assert lighting.masked_blur(values, weights, 4.0)[:, :10] == pytest.approx(5.0)  # nothing bleeds in


def write_exr(channels, multipart, lines=None):
    """An uncompressed scanline EXR as Blender writes one: {name: (H, W) float32}, in one part or
    one part per channel."""
    h, w = next(iter(channels.values())).shape

    def attribute(name, kind, value):
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    def header(names):
        chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
        out = attribute("channels", "chlist", chlist) + attribute("compression", "compression", b"\0")
        out += attribute("dataWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1))
        out += attribute("lineOrder", "lineOrder", b"\0")
        if multipart:
            out += attribute("name", "string", names[0].encode()) + attribute("type", "string", b"scanlineimage")
            out += attribute("chunkCount", "int", struct.pack("<i", h))
        return out + b"\0"

    parts = [[n] for n in sorted(channels)] if multipart else [sorted(channels)]
    head = b"\x76\x2f\x31\x01" + struct.pack("<I", 2 | (0x1000 if multipart else 0))
    head += b"".join(header(p) for p in parts) + (b"\0" if multipart else b"")
    tables = len(head) + 8 * h * len(parts)
    chunks, offsets = b"", []
    for index, names in enumerate(parts):
        table = []
        for y in (lines or range(h)):
            data = b"".join(channels[n][y].astype("<f4").tobytes() for n in names)
            table.append(tables + len(chunks))
            chunks += (struct.pack("<i", index) if multipart else b"") + struct.pack("<ii", y, len(data)) + data
        offsets.append(struct.pack(f"<{h}Q", *table))
    return head + b"".join(offsets) + chunks


@pytest.mark.parametrize("multipart", [False, True])
def test_the_exr_reader_reads_every_pass_of_blenders_layouts(multipart):
    rng = np.random.default_rng(0)
    channels = {f"ViewLayer.{p}.{c}": rng.random((5, 7)).astype(np.float32)
                for p, cs in (("Diffuse Direct", "RGB"), ("Depth", "Z")) for c in cs}
    found = exr.read_exr(write_exr(channels, multipart))
    assert set(found) == set(channels) and all(np.array_equal(found[k], v) for k, v in channels.items())
    shuffled = exr.read_exr(write_exr(channels, multipart, lines=[4, 0, 3, 1, 2]))  # lines in any order
    assert all(np.array_equal(shuffled[k], v) for k, v in channels.items())
    with pytest.raises(exr.ExrError, match="not an OpenEXR file"):
        exr.read_exr(b"\x89PNG....")


VIEW = {"camera": "Camera", "matrix": [1.0] + [0.0] * 15, "lens": [0, 35, 36, 24, 0, 0], "resolution": [1920, 1080]}


@pytest.mark.parametrize("light, words", [
    (dict(VIEW, camera="Side"), "rendered from camera 'Side' but the picture was made from camera 'Camera'"),
    (dict(VIEW, matrix=[1.0] + [0.0] * 2 + [0.01] + [0.0] * 12), "has moved or turned since the picture was made"),
    (dict(VIEW, lens=[0, 50, 36, 24, 0, 0]), "lens of camera 'Camera' has changed"),
    (dict(VIEW, resolution=[1080, 1080]), "another frame shape"),
])
def test_a_light_reference_from_another_view_is_refused_with_the_fix(light, words):
    with pytest.raises(JobSpecError, match=words) as caught:
        same_view(light, VIEW, "light.view")
    assert caught.value.field == "light.view" and "camera" in caught.value.fix
    same_view(dict(VIEW, resolution=[960, 540]), VIEW, "light.view")  # half size, the same frame


def test_a_relight_asks_its_profile_for_relight_and_depth():
    job = {"kind": "relight", "controls": {"depth": {}}, "characters": [{"identity": {"images": []}}],
           "draft": False}
    assert needs(job) == {"relight", "depth_control", "identity"}


def test_a_batch_relights_only_a_moving_shot(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[batch]\nkind = "shot"\nrelight = true\n')
    assert batch_plan.load_plan(str(path))["relight"] is True
    path.write_text('[batch]\nrelight = true\n[shot]\nprompt = "a knight"\n')
    with pytest.raises(UserError, match='relight = true relights a moving shot'):
        batch_plan.load_plan(str(path))
