"""The score arithmetic, pinned on vectors and keypoint sets with known answers."""

import math

import numpy as np
import pytest

from characterforge_addon.core.characters import scores


def unit(*v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def test_cosine_of_known_vectors():
    assert scores.cosine([1, 0], [0, 1]) == 0
    assert scores.cosine([1, 0], [-2, 0]) == -1
    assert scores.cosine([1, 1], [1, 0]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError):
        scores.cosine([1, 0], [1, 0, 0])


def test_identity_takes_the_best_face_and_flags_a_pasted_one():
    mean = unit(1, 1, 0)
    refs = [unit(1, 0, 0), unit(0, 1, 0)]
    # an output face between the references: like the character, not like any one crop
    honest = scores.identity([unit(0, 0, 1), unit(1, 1, 0.2)], mean, refs)
    assert honest["status"] == "ok" and honest["faces"] == 2
    assert honest["similarity"] == pytest.approx(scores.cosine(unit(1, 1, 0.2), mean), abs=1e-4)
    assert not honest["copy_paste"]
    # a face identical to one reference crop: 1.0 to it, 0.71 to the mean -> pasted
    pasted = scores.identity([unit(1, 0, 0)], mean, refs)
    assert pasted["closest_reference"] == 1.0 and pasted["similarity"] == pytest.approx(0.7071, abs=1e-4)
    assert pasted["copy_paste"]
    assert scores.identity([], mean)["status"] == "no_face"
    assert scores.identity([unit(1, 0, 0)], None)["reason"].startswith("unavailable: ")


def test_pairwise_identity_over_a_sheets_faces():
    out = scores.pairwise_identity({"a": unit(1, 0), "b": unit(1, 1), "c": unit(0, 1), "d": None})
    assert out["pairs"] == {"a|b": 0.7071, "a|c": 0.0, "b|c": 0.7071}
    assert out["min"] == 0.0 and out["mean"] == pytest.approx(0.4714, abs=1e-4)
    assert scores.pairwise_identity({"a": unit(1, 0)})["status"] == "unavailable"


def test_pck_counts_visible_joints_within_the_threshold_of_the_box_size():
    # ten visible joints on a 100-pixel-tall person, one hidden, one outside the frame
    target = np.zeros((12, 3))
    target[:10, 1] = np.linspace(0, 100, 10)
    target[:10, 2] = 1.0
    target[10] = (50, 50, 0.5)  # hidden behind the body: not scored
    detected = target.copy()
    detected[:, 2] = np.where(target[:, 2] > 0, 1.0, 0.0)
    detected[0, 0] += 3    # 3 px off: right at 0.05 and 0.1
    detected[1, 0] += 7    # 7 px off: wrong at 0.05, right at 0.1
    detected[2, 0] += 20   # wrong at both
    detected[3, 2] = 0     # missed by the detector: wrong
    detected[10, :2] = (900, 900)  # the hidden joint does not count, wherever it is found
    out = scores.pck(detected, target)
    assert out["joints"] == 10 and out["box_size"] == 100
    assert out["pck@0.05"] == 0.7 and out["pck@0.1"] == 0.8


def test_best_match_picks_the_person_that_fits():
    target = np.array([[0, 0, 1], [0, 100, 1], [50, 50, 1]], dtype=float)
    far = target + [300, 0, 0]
    assert scores.best_match([far, target], target)["pck@0.1"] == 1.0
    assert scores.best_match([], target)["status"] == "no_person"
    assert scores.pck(target * [1, 1, 0], target * [1, 1, 0])["status"] == "unavailable"
