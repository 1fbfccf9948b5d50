"""Carrying a frame over to the next by Blender's motion vectors, and the flicker figure."""

import numpy as np
import pytest

from characterforge_addon.core.shots import motion


def moving_square(shift, size=(40, 60)):
    """(previous, current) object-index images of a square moved `shift` (dx, dy up) pixels,
    with the Vector pass Blender would write for the current frame (zero off the square)."""
    h, w = size
    previous, current = np.zeros(size, np.float32), np.zeros(size, np.float32)
    previous[10:20, 10:20] = 1
    dx, dy = shift
    current[10 - dy:20 - dy, 10 + dx:20 + dx] = 1
    vectors = np.zeros(size + (2,))
    vectors[current == 1] = (-dx, -dy)  # towards the previous frame
    return previous, current, vectors


def test_previous_positions_follow_blenders_vector_pass_with_y_up():
    vectors = np.zeros((4, 5, 2))
    vectors[2, 3] = (-2.0, 1.0)  # was 2 px left and 1 px higher (y up): one row up
    positions = motion.previous_positions(vectors)
    assert tuple(positions[2, 3]) == (1.0, 1.0) and tuple(positions[0, 0]) == (0.0, 0.0)


def test_a_moved_picture_warps_back_exactly_and_the_uncovered_strip_is_a_hole():
    previous_index, index, vectors = moving_square((6, 3))
    rng = np.random.default_rng(0)
    previous = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    positions = motion.previous_positions(vectors)
    warped = motion.warp(previous, positions)
    on = index == 1
    assert np.array_equal(warped[on], previous[10:20, 10:20].reshape(-1, 3))  # the square carried over
    depth = np.full((40, 60), 5.0)
    hole = motion.holes(positions, index, depth, previous_index, depth)
    # where the square was and is no more: the background shows again, from behind it
    uncovered = (previous_index == 1) & ~on
    assert hole[uncovered].all() and not hole[on].any() and hole.sum() == uncovered.sum()


def test_pixels_coming_from_outside_the_frame_are_holes():
    vectors = np.zeros((10, 10, 2))
    vectors[:, :3] = (-4.0, 0.0)  # the left columns came from 4 px further left: outside for columns 0-2
    index = depth = np.ones((10, 10))
    hole = motion.holes(motion.previous_positions(vectors), index, depth, index, depth)
    assert hole[:, :3].all() and not hole[:, 3:].any()


def test_flicker_of_a_synthetic_sequence_has_the_known_answer():
    """A still picture whose brightness steps +4, -2, +6: flicker 4, 2, 6 (mean 4); the same
    picture sliding by whole pixels with the vectors to match: no flicker at all."""
    base = np.tile(np.arange(0, 200, 5, dtype=np.uint8), (30, 1))[..., None].repeat(3, -1)
    frames = [base + k for k in (0, 4, 2, 8)]
    still = np.zeros((30, 40, 2))
    everywhere = [np.ones((30, 40), bool)] * 3
    per_frame, mean = motion.flicker(frames, [motion.previous_positions(still)] * 3, everywhere)
    assert per_frame == pytest.approx([4, 2, 6]) and mean == pytest.approx(4)
    sliding = [np.roll(base, 2 * i, axis=1) for i in range(4)]
    vectors = np.zeros((30, 40, 2))
    vectors[..., 0] = -2
    inside = np.ones((30, 40), bool)
    inside[:, :2] = False  # the columns that came from outside
    per_frame, mean = motion.flicker(sliding, [motion.previous_positions(vectors)] * 3, [inside] * 3)
    assert mean == 0


def test_the_redraw_strength_rises_with_what_was_hidden():
    assert motion.frame_strength(0) == motion.LOW_STRENGTH
    assert motion.frame_strength(2) == motion.HIGH_STRENGTH
    assert motion.LOW_STRENGTH < motion.frame_strength(0.3) < motion.HIGH_STRENGTH
