"""The light reference (maps.light) in a real headless Blender: one sun on a cube and a plane
renders as Lambert's law says, with the cube's shadow where geometry puts it; each light's own
light group, the key light's direction in camera space; a moved light changes it; a scene
without light is refused with the reason."""

import json
import math

import numpy as np
import pytest

SUN = 3.0  # W/m²: a white Lambert surface facing the sun sends back SUN / pi
TOLERANCE = 0.03  # of SUN / pi, on pixels a shadow or silhouette edge does not touch
SIZE = 128


def sun_cube_plane(bpy, scene, angles=(45.0, 0.0, 100.0)):
    """A 10 m plane, a 1 m cube standing on it at the origin, one sun (no angular size), and the
    camera looking down at them from the front."""
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.camera.location = (0.0, -3.4, 2.6)
    scene.camera.rotation_euler = (math.radians(55), 0.0, 0.0)
    bpy.ops.mesh.primitive_plane_add(size=10)
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 0.5))
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.data.energy, sun.data.angle = SUN, 0.0
    sun.rotation_euler = [math.radians(a) for a in angles]
    bpy.context.view_layer.update()
    return sun


def towards_sun(sun):
    return np.array(sun.matrix_world)[:3, 2]


def world_points(bpy, scene, depth):
    from characterforge_addon.blender.rig.joints import camera_model
    from characterforge_addon.core.rig import projection
    cam = camera_model(scene, scene.camera)
    points = projection.unproject(cam, np.where(depth < 1e9, depth, 0.0))
    to_world = np.linalg.inv(cam.world_to_camera)
    return points @ to_world[:3, :3].T + to_world[:3, 3]


def analytic(points, l):
    """(Lambert's direct light / (SUN / pi), in the cube's shadow, on the cube, which face is
    unsure) per pixel of the plane and the cube."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    on_cube = (np.abs(x) <= 0.501) & (np.abs(y) <= 0.501) & (z >= 0.01) & (z <= 1.001)
    normal = np.zeros(points.shape)
    normal[..., 2] = 1.0
    inside = np.stack([np.abs(x) / 0.5, np.abs(y) / 0.5, np.abs(z - 0.5) / 0.5], axis=-1)
    face = np.argmax(inside, axis=-1)
    sorted_ = np.sort(inside, axis=-1)
    unsure = on_cube & (sorted_[..., 2] - sorted_[..., 1] < 0.04)  # near a cube edge
    for axis, coord in ((0, x), (1, y), (2, z - 0.5)):
        pick = on_cube & (face == axis)
        normal[pick] = 0.0
        normal[pick, axis] = np.sign(coord[pick])
    lambert = np.maximum(0.0, normal @ l)
    # a point of the plane is in shadow when its ray to the sun crosses the cube (slab test)
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (np.array([-0.5, -0.5, 0.0]) - points) / l
        t1 = (np.array([0.5, 0.5, 1.0]) - points) / l
    near = np.max(np.minimum(t0, t1), axis=-1)
    far = np.min(np.maximum(t0, t1), axis=-1)
    shadow = ~on_cube & (far > np.maximum(near, 0.0))
    return np.where(shadow, 0.0, lambert), shadow, on_cube, unsure


@pytest.mark.smoke  # the multilayer EXR, its pass names and light groups differ between Blender 4.2 and 5
def test_one_sun_on_a_cube_and_a_plane_is_lambert_with_its_shadow(bpy, scene, tmp_path):
    from characterforge_addon.blender.maps import light
    sun = sun_cube_plane(bpy, scene)
    manifest = light.light_reference(bpy.context, scene.camera, str(tmp_path), samples=4, scale=1.0)
    data = np.load(tmp_path / "light.npz")
    direct, depth = data["direct"][..., 0], data["depth"]
    assert direct.shape == (SIZE, SIZE) and manifest["size"] == [SIZE, SIZE]
    hit = depth < 1e9
    expected, shadow, on_cube, unsure = analytic(world_points(bpy, scene, depth), towards_sun(sun))
    measured = direct / (SUN / math.pi)
    # away from edges (a pixel there mixes two surfaces or light and shadow)
    def near(mask):
        out = mask.copy()
        for axis in (0, 1):
            for shift in (-2, -1, 1, 2):
                out |= np.roll(mask, shift, axis=axis)
        return out
    changes = near(shadow) & near(~shadow) | near(on_cube) & near(~on_cube) | near(~hit) | near(unsure)
    clean = hit & ~changes
    lit_plane, cube = clean & ~on_cube & ~shadow, clean & on_cube
    dark = clean & shadow
    assert lit_plane.sum() > 2000 and cube.sum() > 800 and dark.sum() > 150
    assert np.abs(measured - expected)[lit_plane].max() < TOLERANCE
    assert np.abs(measured - expected)[cube & (expected > 0)].max() < TOLERANCE
    assert measured[dark].max() < TOLERANCE  # the cube's shadow is where geometry puts it, and dark
    assert measured[cube & (expected == 0)].max() < TOLERANCE  # faces turned away get no direct light
    # the light reference is direct + indirect: the lit plane's bounce reaches the faces turned away
    indirect = data["indirect"][..., 0]
    away = cube & (expected == 0)
    assert 0 < indirect[away].mean() < 0.5 * direct[lit_plane].mean() and indirect[dark].max() < TOLERANCE
    # one light: its own light group holds all the light, and it is the key
    (only,) = manifest["lights"]
    assert only["name"] == "Sun" and only["type"] == "SUN" and only["share"] == pytest.approx(1.0, abs=1e-3)
    key = np.array(manifest["key"])
    camera = np.array(scene.camera.matrix_world)[:3, :3]
    assert key == pytest.approx(camera.T @ towards_sun(sun), abs=1e-3)
    assert manifest["words"] == "from the upper right"  # the sun turned 100 degrees about z: it shines from the right
    assert manifest["view"]["camera"] == "Camera" and manifest["view"]["resolution"] == [SIZE, SIZE]
    saved = json.loads((tmp_path / "light.json").read_text())
    assert saved["white"] == pytest.approx(manifest["white"]) and (tmp_path / "light_Sun.png").is_file()
    assert sun.lightgroup == "" and scene.view_layers[0].material_override is None  # the scene as it was


def test_a_moved_light_changes_the_reference_and_no_light_is_refused(bpy, scene, tmp_path):
    from characterforge_addon.blender.maps import light
    from characterforge_addon.core.errors import UserError
    sun = sun_cube_plane(bpy, scene)
    first = light.light_reference(bpy.context, scene.camera, str(tmp_path / "a"), samples=2, scale=0.5)
    sun.rotation_euler = (math.radians(45), 0.0, math.radians(-100))
    bpy.context.view_layer.update()
    second = light.light_reference(bpy.context, scene.camera, str(tmp_path / "b"), samples=2, scale=0.5)
    a = np.load(tmp_path / "a" / "light.npz")["direct"]
    b = np.load(tmp_path / "b" / "light.npz")["direct"]
    assert a.shape == (SIZE // 2, SIZE // 2, 3)
    assert (np.abs(a - b)[..., 0] > 0.3).sum() > 100  # the shadow and the lit faces moved to the other side
    assert first["words"] == "from the upper right" and second["words"] == "from the upper left"
    sun.hide_render = True
    with pytest.raises(UserError, match="the scene has no light to relight with: add a light"):
        light.light_reference(bpy.context, scene.camera, str(tmp_path / "c"))
    sun.hide_render = False
    sun.rotation_euler = (math.radians(180), 0.0, 0.0)  # shining up from below the plane: nothing lit
    bpy.context.view_layer.update()
    with pytest.raises(UserError, match="none of the scene's lights reaches anything the camera sees"):
        light.light_reference(bpy.context, scene.camera, str(tmp_path / "d"), samples=1, scale=0.25)
