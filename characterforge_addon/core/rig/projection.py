"""Camera projection in numpy, following Blender's camera model (sensor fit, shift, pixel aspect).

The add-on reads a `CameraModel` off a Blender camera once per frame and projects all joints
of all rigs in one vectorised call; tests check it against Blender's own world_to_camera_view.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraModel:
    world_to_camera: np.ndarray  # 4x4; the camera looks down its -Z axis
    resolution: tuple            # (width, height) in pixels, percentage applied
    ortho: bool = False
    lens: float = 50.0           # mm, perspective
    ortho_scale: float = 6.0     # orthographic
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    sensor_fit: str = "AUTO"     # AUTO, HORIZONTAL or VERTICAL
    shift: tuple = (0.0, 0.0)
    pixel_aspect: tuple = (1.0, 1.0)
    clip_start: float = 0.1

    def _fit(self):
        """(fits horizontally, sensor size along the fitted axis, fitted axis length in x-pixels)."""
        w, h = self.resolution
        ax, ay = self.pixel_aspect
        fit = self.sensor_fit
        if fit == "AUTO":
            horizontal = w * ax >= h * ay
            sensor = self.sensor_width
        else:
            horizontal = fit == "HORIZONTAL"
            sensor = self.sensor_width if horizontal else self.sensor_height
        ycor = ay / ax
        return horizontal, sensor, (w if horizontal else ycor * h)


def validate_resolution(width, height, limit=16384):
    if width <= 0 or height <= 0:
        raise ValueError(f"render resolution {width}x{height} is empty: set Output Properties > Format > Resolution above 0")
    if width > limit or height > limit:
        raise ValueError(f"render resolution {width}x{height} is over {limit} pixels on a side: lower the resolution or its %")


def project(camera, points):
    """Project world points (N, 3) to pixels.

    Returns (xy, depth): xy (N, 2) pixel coordinates with a top-left origin (pixel centres
    at .5), depth (N,) the planar distance in front of the camera (negative behind it).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    w, h = camera.resolution
    ax, ay = camera.pixel_aspect
    ycor = ay / ax
    cam = points @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3]
    depth = -cam[:, 2]
    horizontal, sensor, viewfac = camera._fit()
    if camera.ortho:
        # Size of one x-pixel in camera units.
        pixsize = camera.ortho_scale / viewfac
        plane = cam[:, :2]
    else:
        pixsize = sensor / camera.lens / viewfac
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = cam[:, :2] / depth[:, None]
    sx, sy = camera.shift
    u = plane[:, 0] / pixsize + 0.5 * w - sx * viewfac
    v_up = (plane[:, 1] / pixsize - sy * viewfac) / ycor + 0.5 * h
    return np.stack([u, h - v_up], axis=1), depth


def in_frame(xy, depth, resolution):
    w, h = resolution
    return (depth > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)


def unproject(camera, depth):
    """Camera-space points (H, W, 3) of a planar depth image (rows top-down, pixel centres)."""
    h, w = depth.shape
    ax, ay = camera.pixel_aspect
    ycor = ay / ax
    _, sensor, viewfac = camera._fit()
    sx, sy = camera.shift
    u = np.arange(w) + 0.5
    v_up = h - (np.arange(h) + 0.5)
    plane_x = (u - 0.5 * w + sx * viewfac)[None, :]
    plane_y = ((v_up - 0.5 * h) * ycor + sy * viewfac)[:, None]
    if camera.ortho:
        pixsize = camera.ortho_scale / viewfac
        x = np.broadcast_to(plane_x * pixsize, depth.shape)
        y = np.broadcast_to(plane_y * pixsize, depth.shape)
    else:
        pixsize = sensor / camera.lens / viewfac
        x = plane_x * pixsize * depth
        y = plane_y * pixsize * depth
    return np.stack([x, y, -depth], axis=-1)
