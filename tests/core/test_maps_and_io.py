import io
import os

import numpy as np
import pytest
from PIL import Image

from characterforge_addon.core import image_io
from characterforge_addon.core.maps import control_maps
from characterforge_addon.core.rig import projection


def test_png_round_trip_with_pillow():
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (5, 7, 3), (5, 7, 4)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        img = Image.open(io.BytesIO(image_io.encode_png(pixels, {"parameters": "seed 1", "prompt": "ein Ritter, 騎士"})))
        assert np.array_equal(np.asarray(img), pixels)
        assert img.text["parameters"] == "seed 1" and img.text["prompt"] == "ein Ritter, 騎士"


def test_png_refuses_float():
    with pytest.raises(ValueError, match="uint8"):
        image_io.encode_png(np.zeros((2, 2), np.float32))


def test_write_atomic_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"

    with pytest.raises(TypeError):
        image_io.write_atomic(str(target), object())
    assert os.listdir(tmp_path) == []
    image_io.write_atomic(str(target), b"abc")
    assert target.read_bytes() == b"abc" and os.listdir(tmp_path) == ["out.png"]


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot be written"):
        image_io.check_writable_folder(str(blocker / "sub"))


def test_depth_near_bright_far_dark_background_black():
    depth = np.array([[1e10, 2.0, 4.0, 8.0, 65504.0]])  # 65504: the background once stored as half float
    img = control_maps.depth_image(depth)
    assert img[0, 0] == 0 and img[0, 1] == 255 and img[0, 3] == control_maps.FAR_LEVEL
    assert img[0, 1] > img[0, 2] > img[0, 3] and img[0, 4] == 0


def test_depth_restricted_to_a_mask():
    depth = np.array([[2.0, 3.0, 4.0]])
    img = control_maps.depth_image(depth, mask=np.array([[False, True, True]]))
    assert img[0, 0] == 0 and img[0, 1] == 255 and img[0, 2] == control_maps.FAR_LEVEL


def test_normals_of_a_plane_facing_the_camera_and_a_tilted_one():
    cam = projection.CameraModel(world_to_camera=np.eye(4), resolution=(32, 32))
    flat = np.full((32, 32), 5.0)
    shown = np.ones((32, 32), bool)
    n = control_maps.normal_image(projection.unproject(cam, flat), shown)
    assert tuple(n[16, 16]) == (128, 128, 255)
    # a floor seen from above at a slant: depth grows towards the top of the image
    rows = np.linspace(6.0, 4.0, 32)[:, None] * np.ones((1, 32))
    n = control_maps.normal_image(projection.unproject(cam, rows), shown)
    assert n[16, 16, 1] > 140 and n[16, 16, 2] > 128  # normal tips up (+y) and still faces the camera


def test_projection_centre_and_edges():
    cam = projection.CameraModel(world_to_camera=np.eye(4), resolution=(200, 100), lens=50, sensor_width=36)
    xy, depth = projection.project(cam, [[0, 0, -10], [1.8, 0, -5], [0, 0, 5]])
    np.testing.assert_allclose(xy[0], [100, 50])
    np.testing.assert_allclose(xy[1], [200, 50])  # 1.8/5 = half sensor/lens: right edge
    assert depth[2] < 0 and not projection.in_frame(xy, depth, (200, 100))[2]


def test_resolution_limits():
    with pytest.raises(ValueError, match="empty"):
        projection.validate_resolution(0, 10)
    with pytest.raises(ValueError, match="over 8192"):
        projection.validate_resolution(10000, 10, 8192)
