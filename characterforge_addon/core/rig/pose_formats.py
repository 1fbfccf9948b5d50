"""Reading 2D poses that other tools write, into the rig's OpenPose layout.

Formats: OpenPose JSON (body 18 or BODY_25, hands 21 x 2, face 70 or DWPose's 68, one or
several people; pixels or sd-webui-controlnet's 0-1 coordinates), the pose editors' copies of
it (sd-webui-openpose-editor, ComfyUI's POSE_KEYPOINT: a list of such documents, one per frame),
COCO-WholeBody (annotation files: keypoints, foot_kpts, face_kpts, lefthand_kpts,
righthand_kpts) and DWPose / MMPose predictions (133 points as [x, y] with keypoint_scores).

Everything that cannot be read is refused with a PoseFileError naming the file, the field and
the fix. Pure Python + numpy.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from . import keypoints
from . import skeleton as sk
from ..errors import UserError

BODY_25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
BODY_25_FEET = (19, 20, 21, 22, 23, 24)
# COCO-17 order -> body-18 index (the neck, which COCO lacks, is the shoulders' midpoint)
COCO17_TO_18 = {0: 0, 6: 2, 8: 3, 10: 4, 5: 5, 7: 6, 9: 7, 12: 8, 14: 9, 16: 10, 11: 11, 13: 12, 15: 13,
                2: 14, 1: 15, 4: 16, 3: 17}
FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
WHOLEBODY_PARTS = (("body", 0, 17), ("feet", 17, 6), ("face", 23, 68), ("left_hand", 91, 21),
                   ("right_hand", 112, 21))
MIN_CONFIDENCE = 0.2  # detectors' points below this are more often wrong than right
FAR = 1.0  # a point more than this many canvas sizes outside the picture is an error, not a pose
_OPENPOSE_PARTS = (("body", "pose_keypoints_2d"), ("left_hand", "hand_left_keypoints_2d"),
                   ("right_hand", "hand_right_keypoints_2d"), ("face", "face_keypoints_2d"))
_SIZES = {"body": 18, "left_hand": 21, "right_hand": 21, "face": 70, "feet": 6}


class PoseFileError(UserError):
    """A pose file that cannot be read; the message names the file, the field and the fix."""


class NoPeople(PoseFileError):
    """A pose file read well that holds nobody (a detector that found no one)."""


def _missing(n):
    return np.zeros((n, 3), dtype=np.float64)


@dataclass
class ImportedPerson:
    """One person's 2D keypoints in the rig's OpenPose layout: (N, 3) x, y, confidence arrays,
    confidence 0 for a point the file does not give. `given`: the parts the file carries."""
    name: str = ""
    body: np.ndarray = field(default_factory=lambda: _missing(18))
    left_hand: np.ndarray = field(default_factory=lambda: _missing(21))
    right_hand: np.ndarray = field(default_factory=lambda: _missing(21))
    face: np.ndarray = field(default_factory=lambda: _missing(70))
    feet: np.ndarray = field(default_factory=lambda: _missing(6))
    given: tuple = ()

    def parts(self):
        return {name: getattr(self, name) for name in _SIZES}

    def person(self):
        """As keypoints.Person (what the rig's own export and the fit figure use)."""
        return keypoints.Person(self.name, self.body.copy(), self.left_hand.copy(), self.right_hand.copy(),
                                self.face.copy())

    def size(self):
        """The larger side of the box around the body's points (all points if it has none)."""
        points = self.body[self.body[:, 2] > 0, :2]
        if len(points) < 2:
            points = np.concatenate([p[p[:, 2] > 0, :2] for p in self.parts().values()])
        if len(points) < 2:
            return 0.0
        return float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])))

    def count(self):
        return int(sum((p[:, 2] > 0).sum() for p in self.parts().values()))

    def mapped(self, scale, offset):
        """A copy with every point moved to scale * xy + offset."""
        out = ImportedPerson(self.name, given=self.given)
        for name, points in self.parts().items():
            moved = points.copy()
            present = moved[:, 2] > 0
            moved[present, :2] = moved[present, :2] * scale + np.asarray(offset)
            setattr(out, name, moved)
        return out


@dataclass
class PoseFrame:
    width: int
    height: int
    people: list


@dataclass
class PoseDocument:
    format: str
    frames: list
    normalized: bool = False


# ---------------------------------------------------------------------------------------------
# Entry points

def read_pose_file(path, fallback_canvas=None, min_confidence=MIN_CONFIDENCE):
    """Read a pose file; `fallback_canvas` (width, height) for formats that do not record the
    picture's size (raw OpenPose, MMPose predictions)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PoseFileError(f"cannot read pose file {path} ({exc.strerror or exc})") from None
    return read_pose(data, f"pose file {path}", fallback_canvas, min_confidence)


def read_pose(data, source="pose file", fallback_canvas=None, min_confidence=MIN_CONFIDENCE):
    """Parse the bytes or text of a pose file into a PoseDocument (one frame or several)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PoseFileError(f"{source} is not a text file (a picture? use Pose from Picture for photos)") from None
    try:
        doc = json.loads(data)  # NaN and Infinity parse, to be refused with their field named
    except json.JSONDecodeError as exc:
        raise PoseFileError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                            "export the pose again as OpenPose JSON") from None
    reader = _Reader(source, fallback_canvas, min_confidence)
    out = reader.document(doc)
    if not any(frame.people for frame in out.frames):
        where = "people" if out.format.startswith("OpenPose") else "the file's instances"
        raise NoPeople(f"{source}: {where} is empty: the file holds no person to pose the rig with")
    return out


def people_by_size(frame):
    """Indices of a frame's people, the largest (on the picture) first."""
    return sorted(range(len(frame.people)), key=lambda i: -frame.people[i].size())


def fit_to_render(frame, person, resolution):
    """`person` moved from the picture's pixels into the render's: the picture fitted inside the
    camera frame, centred (its aspect kept). Returns (moved person, scale, offset)."""
    w, h = resolution
    scale = min(w / frame.width, h / frame.height)
    offset = ((w - frame.width * scale) / 2.0, (h - frame.height * scale) / 2.0)
    return person.mapped(scale, offset), scale, offset


# ---------------------------------------------------------------------------------------------
# The formats

class _Reader:
    def __init__(self, source, fallback_canvas, min_confidence):
        self.source, self.fallback, self.min_confidence = source, fallback_canvas, min_confidence

    def fail(self, field_name, message, fix=""):
        raise PoseFileError(f"{self.source}: {field_name} {message}" + (f"; {fix}" if fix else ""))

    def document(self, doc):
        if isinstance(doc, dict) and "people" in doc:
            frame, normalized = self.openpose(doc, "")
            return PoseDocument("OpenPose JSON", [frame], normalized)
        if isinstance(doc, list) and doc and all(isinstance(d, dict) and "people" in d for d in doc):
            frames = [self.openpose(d, f"[{i}].") for i, d in enumerate(doc)]
            return PoseDocument("ComfyUI POSE_KEYPOINT (frames)", [f for f, _ in frames], any(n for _, n in frames))
        if isinstance(doc, dict) and "annotations" in doc:
            return self.coco(doc)
        if isinstance(doc, dict) and "instance_info" in doc:
            return self.mmpose(doc["instance_info"], "instance_info")
        if isinstance(doc, list) and doc and all(isinstance(d, dict) and "keypoints" in d for d in doc):
            return self.mmpose(doc, "")
        if isinstance(doc, dict) and "keypoints" in doc:
            return self.mmpose([doc], "")
        if isinstance(doc, list) and not doc:
            self.fail("(a list)", "is empty", "the file holds no pose")
        self.fail("(the top level)", "has neither \"people\" (OpenPose), \"annotations\" (COCO-WholeBody) nor "
                  "\"keypoints\" / \"instance_info\" (DWPose, MMPose)",
                  "export the pose as OpenPose JSON (ComfyUI, sd-webui-openpose-editor, OpenPose itself)")

    # -- OpenPose and its editors --------------------------------------------------------------

    def _canvas(self, doc, prefix):
        size = []
        for key in ("canvas_width", "canvas_height"):
            value = doc.get(key)
            if value is None:
                size = None
                break
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 1 <= value <= 65536:
                self.fail(prefix + key, f"must be a picture size in pixels (1 to 65536), got {value!r}")
            size.append(int(round(value)))
        return tuple(size) if size else None

    def openpose(self, doc, prefix):
        people = doc.get("people")
        if not isinstance(people, list):
            self.fail(prefix + "people", f"must be a list of people, got {type(people).__name__}")
        canvas = self._canvas(doc, prefix)
        raw = []
        for i, entry in enumerate(people):
            where = f"{prefix}people[{i}]"
            if not isinstance(entry, dict):
                self.fail(where, f"must be an object with pose_keypoints_2d, got {type(entry).__name__}")
            parts = {}
            for part, key in _OPENPOSE_PARTS:
                value = entry.get(key)
                if value is None or value == []:
                    continue
                parts[part] = self.points(value, f"{where}.{key}", part)
            name = entry.get("name", "")
            raw.append((str(name) if isinstance(name, (str, int)) else "", parts))
        normalized = self._normalized(raw, canvas)
        canvas = self._size(canvas, prefix, normalized)
        out = []
        for i, (name, parts) in enumerate(raw):
            person = ImportedPerson(name, given=tuple(sorted(parts)))
            for part, points in parts.items():
                where = f"{prefix}people[{i}].{dict(_OPENPOSE_PARTS).get(part, part)}"
                points = self.clean(points, canvas, normalized, where)
                if part == "body" and len(points) == 25:
                    person.feet = points[list(BODY_25_FEET)]
                    points = points[list(BODY_25_TO_18)]
                    person.given = tuple(sorted(set(person.given) | {"feet"}))
                if part == "face" and len(points) == 68:
                    points = _with_pupils(points)
                setattr(person, part, points)
            if person.count():
                out.append(person)
        return PoseFrame(canvas[0], canvas[1], out), normalized

    def points(self, value, where, part):
        """A part's numbers as an (N, 3) array: flat [x, y, c, ...] or [[x, y, c], ...]."""
        if not isinstance(value, list):
            self.fail(where, f"must be a list of numbers, got {type(value).__name__}")
        if value and all(isinstance(v, list) for v in value):
            if any(len(v) not in (2, 3) for v in value):
                self.fail(where, "must hold [x, y] or [x, y, confidence] entries")
            value = [n for v in value for n in (v if len(v) == 3 else v + [1.0])]
        for j, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(f"{where}[{j}]", f"must be a number, got {v!r}")
            if not math.isfinite(v):
                self.fail(f"{where}[{j}]", f"is {v!r}, not a finite number", "export the pose again")
        allowed = {"body": (18, 25), "left_hand": (21,), "right_hand": (21,), "face": (70, 68)}[part]
        if len(value) % 3 or len(value) // 3 not in allowed:
            expected = " or ".join(f"{3 * n} ({n} points)" for n in allowed)
            self.fail(where, f"has {len(value)} numbers; expected {expected}",
                      "the file is cut short or written for another skeleton")
        return np.asarray(value, dtype=np.float64).reshape(-1, 3)

    def _normalized(self, raw, canvas):
        """sd-webui-controlnet and ComfyUI's detectors write 0-1 coordinates: every point given
        lies within [-1, 1.01] (with -1 marking missing hand points)."""
        values = [p[p[:, 2] > 0, :2] for _, parts in raw for p in parts.values()]
        values = np.concatenate(values) if values else np.zeros((0, 2))
        values = values[(values != -1).all(axis=1)]
        if len(values) == 0 or (canvas and max(canvas) <= 2):
            return False
        return bool(np.abs(values).max() <= 1.01 and np.ptp(values) > 0)

    def _size(self, canvas, prefix, normalized):
        if canvas:
            return canvas
        if self.fallback:
            return tuple(int(v) for v in self.fallback)
        self.fail(prefix + "canvas_width", "is missing, so the picture's size is unknown",
                  "add \"canvas_width\" and \"canvas_height\" (the picture's size in pixels) to the file")

    def clean(self, points, canvas, normalized, where, names=None):
        """Confidences checked, missing points zeroed, 0-1 coordinates scaled to pixels, and
        points far outside the picture refused."""
        points = points.copy()
        w, h = canvas
        conf = points[:, 2]
        missing = conf <= 0  # OpenPose writes 0 for a missing point
        if normalized:
            # -1 (controlnet_aux) and -1 pixel (sd-webui-controlnet) mark missing hand points
            xy = points[:, :2]
            missing |= (xy == -1).any(axis=1) | ((xy < 0) & (xy > -2.5 / max(w, h))).any(axis=1)
            points[:, 0] *= w
            points[:, 1] *= h
        else:
            missing |= (points[:, :2] == -1).any(axis=1)
        missing |= (points[:, 0] == 0) & (points[:, 1] == 0)
        missing |= conf < self.min_confidence
        points[:, 2] = np.clip(conf, 0.0, 1.0)
        points[missing] = 0.0
        far = ~missing & ((points[:, 0] < -FAR * w) | (points[:, 0] > (1 + FAR) * w)
                          | (points[:, 1] < -FAR * h) | (points[:, 1] > (1 + FAR) * h))
        if far.any():
            j = int(np.flatnonzero(far)[0])
            label = names[j] if names else _point_name(where, j, len(points))
            self.fail(f"{where}[{j}]", f"({label}) at x={points[j, 0]:.1f}, y={points[j, 1]:.1f} is far outside the "
                      f"{w}x{h} picture", "fix the point or the file's canvas_width / canvas_height")
        return points

    # -- COCO-WholeBody annotations ------------------------------------------------------------

    def coco(self, doc):
        annotations = doc["annotations"]
        if not isinstance(annotations, list):
            self.fail("annotations", "must be a list")
        sizes = {}
        for i, image in enumerate(doc.get("images") or []):
            if isinstance(image, dict) and "id" in image:
                try:
                    sizes[image["id"]] = (int(image["width"]), int(image["height"]))
                except (KeyError, TypeError, ValueError):
                    self.fail(f"images[{i}]", "needs whole-number width and height")
        frames = {}
        for i, ann in enumerate(annotations):
            where = f"annotations[{i}]"
            if not isinstance(ann, dict) or "keypoints" not in ann:
                self.fail(where, "must be an object with keypoints")
            arrays = {}
            for part, key, n in (("body", "keypoints", 17), ("feet", "foot_kpts", 6), ("face", "face_kpts", 68),
                                 ("left_hand", "lefthand_kpts", 21), ("right_hand", "righthand_kpts", 21)):
                value = ann.get(key)
                if value is None:
                    continue
                arrays[part] = self._coco_array(value, f"{where}.{key}", n)
            canvas = sizes.get(ann.get("image_id")) or (tuple(int(v) for v in self.fallback) if self.fallback else None)
            if canvas is None:
                self.fail(f"{where}.image_id", f"({ann.get('image_id')!r}) names no entry of \"images\" with its width "
                          "and height", "keep the file's images list with the annotations")
            frames.setdefault(ann.get("image_id"), (canvas, []))[1].append(
                self._wholebody(arrays, canvas, False, where, visibility=True))
        if not frames:
            self.fail("annotations", "is empty", "the file holds no person to pose the rig with")
        keys = sorted(frames, key=lambda k: (str(type(k)), k))
        return PoseDocument("COCO-WholeBody", [PoseFrame(frames[k][0][0], frames[k][0][1],
                                                         [p for p in frames[k][1] if p.count()]) for k in keys])

    def _coco_array(self, value, where, n):
        if not isinstance(value, list) or len(value) != 3 * n:
            got = len(value) if isinstance(value, list) else type(value).__name__
            self.fail(where, f"has {got} numbers; expected {3 * n} ({n} points as x, y, visibility)")
        for j, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(f"{where}[{j}]", f"must be a finite number, got {v!r}")
        return np.asarray(value, dtype=np.float64).reshape(n, 3)

    # -- DWPose / MMPose predictions -----------------------------------------------------------

    def mmpose(self, items, prefix):
        if not isinstance(items, list) or not items:
            self.fail(prefix or "(the top level)", "holds no instances")
        frame_lists = []
        if all(isinstance(item, dict) and "instances" in item for item in items):  # a video: frames of instances
            for i, item in enumerate(items):
                frame_lists.append((item["instances"], f"{prefix}[{i}].instances"))
        else:
            frame_lists.append((items, prefix))
        parsed = []
        for instances, where in frame_lists:
            if not isinstance(instances, list):
                self.fail(where, "must be a list of instances")
            people = []
            for i, inst in enumerate(instances):
                at = f"{where}[{i}]"
                if not isinstance(inst, dict) or "keypoints" not in inst:
                    self.fail(at, "must be an object with keypoints")
                points = self._mm_points(inst, at)
                n = len(points)
                if n == 133:
                    arrays = {part: points[start:start + count] for part, start, count in WHOLEBODY_PARTS}
                elif n == 17:
                    arrays = {"body": points}
                else:
                    self.fail(f"{at}.keypoints", f"has {n} points; expected 133 (COCO-WholeBody, DWPose) or 17 (COCO)")
                people.append((arrays, self._mm_normalized(points), at))
            parsed.append(people)
        if not self.fallback:  # predictions do not record the picture's size
            self.fail(prefix or "(the top level)", "does not say how large the picture is",
                      "import it into a scene whose render size is the picture's (the add-on reads it from there)")
        canvas = tuple(int(v) for v in self.fallback)
        frames = []
        for people in parsed:
            found = [self._wholebody(arrays, canvas, normalized, at) for arrays, normalized, at in people]
            frames.append(PoseFrame(canvas[0], canvas[1], [p for p in found if p.count()]))
        return PoseDocument("DWPose / MMPose (133 points)", frames)

    def _mm_points(self, inst, at):
        value = inst["keypoints"]
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list) and value[0] \
                and isinstance(value[0][0], list):
            value = value[0]  # MMPose keeps a leading instance axis
        if not isinstance(value, list) or not value:
            self.fail(f"{at}.keypoints", "must be a list of points")
        if all(isinstance(v, list) for v in value):
            if any(len(v) not in (2, 3) for v in value):
                self.fail(f"{at}.keypoints", "must hold [x, y] or [x, y, score] entries")
            flat = [n for v in value for n in v]
            width = 3 if all(len(v) == 3 for v in value) else 2
        else:
            flat, width = value, 3 if len(value) in (133 * 3, 17 * 3) else 2
        for j, v in enumerate(flat):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(f"{at}.keypoints[{j // width}]", f"must be finite numbers, got {v!r}")
        if len(flat) % width:
            self.fail(f"{at}.keypoints", f"has {len(flat)} numbers, not a whole number of points")
        points = np.asarray(flat, dtype=np.float64).reshape(-1, width)
        if width == 2:
            scores = inst.get("keypoint_scores")
            if isinstance(scores, list) and len(scores) == 1 and isinstance(scores[0], list):
                scores = scores[0]
            if scores is None:
                scores = [1.0] * len(points)
            if not isinstance(scores, list) or len(scores) != len(points):
                self.fail(f"{at}.keypoint_scores", f"must hold one score per point ({len(points)})")
            for j, v in enumerate(scores):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    self.fail(f"{at}.keypoint_scores[{j}]", f"must be a finite number, got {v!r}")
            points = np.column_stack([points, np.asarray(scores, dtype=np.float64)])
        return points

    @staticmethod
    def _mm_normalized(points):
        given = points[points[:, 2] > 0, :2]
        return bool(len(given) and np.abs(given).max() <= 1.01 and np.ptp(given) > 0)

    def _wholebody(self, arrays, canvas, normalized, where, visibility=False):
        """COCO-17 (+ feet, 68 face points, hands) into the OpenPose layout. COCO visibility
        flags (0 unlabelled, 1 labelled but hidden, 2 visible) become confidence 0, 0.5, 1."""
        person = ImportedPerson(given=tuple(sorted(arrays)))
        for part, points in arrays.items():
            if visibility:
                points = points.copy()
                points[:, 2] = points[:, 2] / 2.0
            points = self.clean(points, canvas, normalized, f"{where}.{part}")
            if part == "body":
                body = _missing(18)
                for coco, ours in COCO17_TO_18.items():
                    body[ours] = points[coco]
                sh = points[[5, 6]]
                if (sh[:, 2] > 0).all():
                    body[1] = (*sh[:, :2].mean(axis=0), sh[:, 2].min())
                person.body = body
            elif part == "face":
                person.face = _with_pupils(points)
            else:
                setattr(person, part, points)
        return person


def _with_pupils(face68):
    """68 dlib points plus OpenPose's two pupils, each the centre of its eye's six points."""
    face = np.vstack([face68, np.zeros((2, 3))])
    for pupil, start in ((68, 36), (69, 42)):
        eye = face68[start:start + 6]
        if (eye[:, 2] > 0).all():
            face[pupil] = (*eye[:, :2].mean(axis=0), eye[:, 2].min())
    return face


def _point_name(where, index, count):
    names = {18: sk.BODY_JOINTS, 21: sk.HAND_JOINTS, 70: sk.FACE_JOINTS, 6: FEET}.get(count)
    if count == 25 and index < 25:
        return "BODY_25 point"
    return names[index] if names and index < len(names) else f"point {index}"
