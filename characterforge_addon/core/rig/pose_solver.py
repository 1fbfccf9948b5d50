"""A 2D pose onto the CharacterForge rig in 3D, through the camera that sees it.

The camera and the rig's bone lengths are known, so the classic single-view reconstruction
with known lengths applies: every joint lies on its camera ray, and a bone of length L from
a placed parent joint meets the child's ray in at most two points (towards or away from the
camera). In order:

1. the torso and head: a small least-squares fit of the hips' place and turn and the spine,
   chest, neck, head and collar-bone rotations to neck, shoulders, hips, nose, eyes, ears and
   the face's rigid points (its depth follows from its size), started from several turns and
   pulled towards the rig's current pose where the picture says nothing;
2. arms and legs: each bone's depth from its projected length (the two roots); of the
   combinations the one within joint limits and nearest the rig's current pose wins, and a
   per-limb flip takes the other root;
3. hands: the palm's rotation from its five rigid points (several starts: a palm seen edge-on
   or from either side), then each finger's spread and three bends within their limits;
4. feet from toes and heels (BODY_25, COCO-WholeBody), else kept as they were to the shin;
5. the face's 70 points move the face bones (the expression) across the head.

A pose is {bone: (R, L)}: R the bone's rotation about its rest head in the armature's rest
axes relative to its parent, L its offset from rest (armature axes, before the rotation), the
form Blender's pose channels take after `rest⁻¹ · R · rest`. `Skeleton.transforms` is the
forward kinematics, in numpy alone.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import projection
from . import skeleton as sk

I3 = np.eye(3)
SIDE_WORDS = (("L", "left"), ("R", "right"))
B = {name: i for i, name in enumerate(sk.BODY_JOINTS)}
# Limbs whose depth a single view cannot decide, each with a flip in the panel
FLIPS = ("upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R", "thigh.L", "shin.L", "thigh.R", "shin.R",
         "hand.L", "hand.R")
LIMB_NAMES = {"upper_arm": "upper arm", "forearm": "forearm", "thigh": "thigh", "shin": "lower leg",
              "hand": "hand", "foot": "foot"}
TORSO_LIMITS = {"spine": 35, "chest": 35, "neck": 40, "head": 60, "shoulder.L": 25, "shoulder.R": 25}
FACE_RIGID = tuple(i for i, n in enumerate(sk.FACE_JOINTS) if n.startswith(("nose_", "right_eye", "left_eye"))
                   or n.endswith("_pupil"))
PALM = (1, 5, 9, 13, 17)  # thumb base and the four knuckles: fixed to the hand bone
FINGER_LIMITS = {"thumb": ((-45, 45), (-40, 70), (-20, 90), (-20, 90)),  # spread, bends 1-3 (degrees)
                 "other": ((-25, 25), (-30, 95), (-5, 110), (-5, 95))}
MAX_EXPRESSION = 0.35  # a face point moves at most this many head units from its rest place


def bone_label(bone):
    stem, _, side = bone.partition(".")
    word = {"L": "left", "R": "right"}.get(side, "")
    return f"{word} {LIMB_NAMES.get(stem, stem)}".strip()


# ---------------------------------------------------------------------------------------------
# Rotations

def rotation(w):
    """The rotation matrix of rotation vector `w` (axis x angle, radians)."""
    x, y, z = float(w[0]), float(w[1]), float(w[2])
    angle = math.sqrt(x * x + y * y + z * z)
    if angle < 1e-12:
        return I3.copy()
    x, y, z = x / angle, y / angle, z / angle
    s, c = math.sin(angle), math.cos(angle)
    t = 1.0 - c
    return np.array([[c + t * x * x, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, c + t * y * y, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, c + t * z * z]])


def rotation_vector(R):
    """The rotation vector of rotation matrix R."""
    cos = max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if angle > math.pi - 1e-6:  # near 180 degrees: the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        i = int(np.argmax(axis))
        axis[(i + 1) % 3] = math.copysign(axis[(i + 1) % 3], R[i, (i + 1) % 3] + R[(i + 1) % 3, i])
        axis[(i + 2) % 3] = math.copysign(axis[(i + 2) % 3], R[i, (i + 2) % 3] + R[(i + 2) % 3, i])
        return axis / np.linalg.norm(axis) * angle
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2.0 * math.sin(angle))
    return v * angle


def angle_of(R):
    return math.acos(max(-1.0, min(1.0, (R[0, 0] + R[1, 1] + R[2, 2] - 1.0) / 2.0)))


def swing(a, b):
    """The smallest rotation taking direction a to direction b."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-12:
        if c > 0:
            return I3.copy()
        other = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 1.0, 0])
        return rotation(_unit(np.cross(a, other)) * math.pi)
    return rotation(axis / s * math.atan2(s, c))


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _angle(a, b):
    return math.acos(max(-1.0, min(1.0, float(_unit(a) @ _unit(b)))))


# ---------------------------------------------------------------------------------------------
# The rig as arrays: forward kinematics

class Skeleton:
    """The rig's rest bones (from `rig_layout.build_layout`) for forward kinematics."""

    def __init__(self, layout):
        self.layout = layout
        self.names = [b.name for b in layout.bones]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.parent = [self.index[b.parent] if b.parent else -1 for b in layout.bones]
        assert all(p < i for i, p in enumerate(self.parent)), "bones must be listed parents first"
        self.head = np.array([b.head for b in layout.bones], dtype=np.float64)
        self.tail = np.array([b.tail for b in layout.bones], dtype=np.float64)
        self.hu = layout.head_unit
        self.joints = {part: [(self.index[bone], end) for bone, end in js] for part, js in layout.joints.items()}

    def rest_point(self, part, j):
        i, end = self.joints[part][j]
        return (self.head if end == "head" else self.tail)[i]

    def length(self, bone):
        i = self.index[bone]
        return float(np.linalg.norm(self.tail[i] - self.head[i]))

    def transforms(self, pose):
        """(G (N, 3, 3), c (N, 3)): each bone maps rest points x to posed G x + c."""
        n = len(self.names)
        G, c = np.empty((n, 3, 3)), np.empty((n, 3))
        for i, name in enumerate(self.names):
            R, L = pose.get(name, (I3, None))
            p = self.parent[i]
            Gp, cp = (I3, np.zeros(3)) if p < 0 else (G[p], c[p])
            h = self.head[i]
            G[i] = Gp @ R
            c[i] = Gp @ (h + (0 if L is None else L) - R @ h) + cp
        return G, c

    def joint_positions(self, G, c):
        """{part: (N, 3)} posed OpenPose joint positions."""
        out = {}
        for part, js in self.joints.items():
            out[part] = np.array([G[i] @ (self.head[i] if end == "head" else self.tail[i]) + c[i] for i, end in js])
        return out

    def pose_of(self, G, c):
        """The pose ({bone: (R, L)}) whose transforms are G, c (e.g. read off Blender's bones)."""
        pose = {}
        for i, name in enumerate(self.names):
            p = self.parent[i]
            Gp, cp = (I3, np.zeros(3)) if p < 0 else (G[p], c[p])
            R = Gp.T @ G[i]
            h = self.head[i]
            pose[name] = (R, Gp.T @ (c[i] - cp) - h + R @ h)
        return pose


def _child(Gp, cp, R, h, L=None):
    G = Gp @ R
    return G, Gp @ (h + (0 if L is None else L) - R @ h) + cp


# ---------------------------------------------------------------------------------------------
# Camera rays

def camera_rays(camera, xy):
    """(origins, unit directions) of the rays through pixels `xy` (N, 2), in the space the
    camera model projects from (projection.project's inverse)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    w, h = camera.resolution
    ax, ay = camera.pixel_aspect
    _, sensor, viewfac = camera._fit()
    sx, sy = camera.shift
    plane_x = xy[:, 0] - 0.5 * w + sx * viewfac
    plane_y = ((h - xy[:, 1]) - 0.5 * h) * (ay / ax) + sy * viewfac
    back = np.linalg.inv(camera.world_to_camera)
    if camera.ortho:
        pix = camera.ortho_scale / viewfac
        origins_cam = np.column_stack([plane_x * pix, plane_y * pix, np.zeros(len(xy))])
        dirs_cam = np.tile([0.0, 0.0, -1.0], (len(xy), 1))
    else:
        pix = sensor / camera.lens / viewfac
        origins_cam = np.zeros((len(xy), 3))
        dirs_cam = np.column_stack([plane_x * pix, plane_y * pix, -np.ones(len(xy))])
    origins = origins_cam @ back[:3, :3].T + back[:3, 3]
    dirs = dirs_cam @ back[:3, :3].T
    return origins, dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def _roots(origin, direction, parent, length):
    """Points on the ray at `length` from `parent`: [(point, 0 nearer / 1 farther)], or the one
    closest reach [(point, -1)] when the bone is too short to meet the ray."""
    b = float(direction @ (origin - parent))
    cc = float((origin - parent) @ (origin - parent)) - length * length
    disc = b * b - cc
    if disc < 0:
        closest = origin - b * direction
        miss = np.linalg.norm(closest - parent) - length
        # grazing the ray (within 3 % of the bone) is reaching it: one root, no note
        return [(parent + _unit(closest - parent) * length, -1 if miss > 0.03 * length else 2)]
    root = math.sqrt(disc)
    return [(origin + (-b - root) * direction, 0), (origin + (-b + root) * direction, 1)]


# ---------------------------------------------------------------------------------------------
# Least squares (Levenberg-Marquardt with a numeric Jacobian): small problems only

def least_squares(residual, x0, iterations=60, step=1e-6):
    x = np.asarray(x0, dtype=np.float64).copy()
    r = residual(x)
    cost = float(r @ r)
    lam = 1e-3
    for _ in range(iterations):
        J = np.empty((len(r), len(x)))
        for k in range(len(x)):
            dx = x.copy()
            dx[k] += step
            J[:, k] = (residual(dx) - r) / step
        A, g = J.T @ J, J.T @ r
        improved = False
        while lam < 1e10:
            delta = np.linalg.solve(A + lam * (np.diag(np.diag(A)) + 1e-9 * np.eye(len(x))), -g)
            x_new = x + delta
            r_new = residual(x_new)
            new = float(r_new @ r_new)
            if new < cost:
                improved = cost - new > 1e-8 * (1.0 + cost) and np.abs(delta).max() > 1e-9
                x, r, cost, lam = x_new, r_new, new, max(lam * 0.3, 1e-9)
                break
            lam *= 8.0
        if not improved:
            break
    return x, cost


# ---------------------------------------------------------------------------------------------
# The solve

@dataclass
class Solution:
    pose: dict                                   # the whole rig's pose, {bone: (R, L)}
    placed: list = field(default_factory=list)   # bones set from the picture
    unplaced: list = field(default_factory=list)  # (what, why) the picture did not decide
    kept: list = field(default_factory=list)     # parts the file does not carry, left as they were
    notes: list = field(default_factory=list)    # e.g. a bone too short to reach its point
    choices: dict = field(default_factory=dict)  # flip key -> "towards" / "away" (the camera), as chosen


class _Targets:
    """One person's points in the camera's pixels, their rays and weights."""

    def __init__(self, camera, person, min_size):
        self.camera = camera
        self.parts = {name: np.asarray(getattr(person, name), dtype=np.float64)
                      for name in ("body", "left_hand", "right_hand", "face", "feet")}
        self.size = max(person.size(), min_size)
        self.sigma = max(1.0, 0.01 * self.size)  # residuals in hundredths of the person's size

    def has(self, part, j):
        return self.parts[part][j, 2] > 0

    def xy(self, part, j):
        return self.parts[part][j, :2]

    def weight(self, part, j):
        return math.sqrt(min(1.0, self.parts[part][j, 2]))

    def ray(self, part, j):
        o, d = camera_rays(self.camera, self.xy(part, j)[None])
        return o[0], d[0]


def solve(skeleton, camera, person, prior, flips=frozenset(), use_face=True):
    """Pose `skeleton` so that `camera` sees it as `person` (pose_formats.ImportedPerson, in the
    camera's pixels). `prior`: the rig's current pose; `flips`: FLIPS keys whose automatic
    depth choice is turned over. Returns a Solution."""
    targets = _Targets(camera, person, 0.5 * min(camera.resolution) * 0.05)
    out = Solution(pose={name: (R.copy(), None if L is None else np.asarray(L, float).copy())
                         for name, (R, L) in prior.items()})
    given = set(getattr(person, "given", ()) or ("body", "left_hand", "right_hand", "face"))
    for part, what in (("left_hand", "left hand and fingers"), ("right_hand", "right hand and fingers"),
                       ("face", "face (expression)")):
        if part not in given or not (targets.parts[part][:, 2] > 0).any():
            out.kept.append(what)
    Gp, cp = skeleton.transforms(prior)
    torso = _Torso(skeleton, targets, prior, Gp, cp)
    torso.solve(out)
    G, c = skeleton.transforms(out.pose)
    for side, word in SIDE_WORDS:
        _limb(skeleton, targets, out, G, c, Gp, cp, side, word, "arm", flips)
        _limb(skeleton, targets, out, G, c, Gp, cp, side, word, "leg", flips)
    G, c = skeleton.transforms(out.pose)
    for side, word in SIDE_WORDS:
        if f"{word} hand and fingers" not in out.kept:
            _hand(skeleton, targets, out, G, c, Gp, side, word, flips)
    G, c = skeleton.transforms(out.pose)
    for side, word in SIDE_WORDS:
        _foot(skeleton, targets, out, G, c, Gp, side, word)
    if use_face and "face (expression)" not in out.kept:
        G, c = skeleton.transforms(out.pose)
        _expression(skeleton, targets, out, G, c)
    out.pose["root"] = (I3.copy(), np.zeros(3))
    return out


class _Torso:
    BONES = ("hips", "spine", "chest", "neck", "head", "shoulder.L", "shoulder.R")

    def __init__(self, skeleton, targets, prior, Gp, cp):
        self.sk, self.t = skeleton, targets
        self.prior = prior
        self.Gp, self.cp = Gp, cp
        ix = skeleton.index
        self.h = {b: skeleton.head[ix[b]] for b in self.BONES}
        # observed points: (part, index, bone whose transform carries it, rest point)
        self.obs = []
        body_bone = {"neck": "chest", "right_shoulder": "shoulder.R", "left_shoulder": "shoulder.L",
                     "right_hip": "hips", "left_hip": "hips", "nose": "head", "right_eye": "head",
                     "left_eye": "head", "right_ear": "head", "left_ear": "head"}
        for name, bone in body_bone.items():
            j = B[name]
            rest = skeleton.rest_point("body", j)
            own = skeleton.joints["body"][j][0]
            L = prior.get(skeleton.names[own], (I3, None))[1]
            if skeleton.parent[own] >= 0 and skeleton.names[skeleton.parent[own]] == bone and L is not None:
                rest = rest + L  # nose, eyes and ears may sit moved on the head
            self.obs.append(("body", j, bone, rest, 1.0))
        for j in FACE_RIGID:
            self.obs.append(("face", j, "head", skeleton.rest_point("face", j), 2.0 / len(FACE_RIGID)))
        self.obs = [o for o in self.obs if targets.has(o[0], o[1])]
        self.obs.sort(key=lambda o: self.BONES.index(o[2]))
        self.groups = [(bone, np.array([o[3] for o in self.obs if o[2] == bone]))
                       for bone in self.BONES if any(o[2] == bone for o in self.obs)]
        self.xy = np.array([targets.xy(p, j) for p, j, *_ in self.obs]).reshape(-1, 2)
        self.w = np.array([targets.weight(p, j) * math.sqrt(k) for p, j, _, _, k in self.obs])
        self.limits = {b: math.radians(a) for b, a in TORSO_LIMITS.items()}
        hips = skeleton.index["hips"]
        self.R_hips_prior = Gp[hips]
        self.p_prior = Gp[hips] @ self.h["hips"] + cp[hips]

    def _transforms(self, x, starts):
        R = {b: starts[b] @ rotation(x[3 + 3 * k: 6 + 3 * k]) for k, b in enumerate(self.BONES)}
        T = {"hips": (R["hips"], x[:3] - R["hips"] @ self.h["hips"])}
        T["spine"] = _child(*T["hips"], R["spine"], self.h["spine"])
        T["chest"] = _child(*T["spine"], R["chest"], self.h["chest"])
        T["neck"] = _child(*T["chest"], R["neck"], self.h["neck"])
        T["head"] = _child(*T["neck"], R["head"], self.h["head"])
        for s in ("L", "R"):
            T[f"shoulder.{s}"] = _child(*T["chest"], R[f"shoulder.{s}"], self.h[f"shoulder.{s}"])
        return R, T

    def _residual(self, x, starts):
        R, T = self._transforms(x, starts)
        parts = []
        if self.obs:
            pts = np.concatenate([rest @ T[bone][0].T + T[bone][1] for bone, rest in self.groups])
            xy, depth = projection.project(self.t.camera, pts)
            err = (xy - self.xy) / self.t.sigma
            err[depth <= 0] = 1e3
            parts.append((err * self.w[:, None]).ravel())
        # the other bones start at the current pose, so x is their turn away from it
        parts.append(x[6:] / 0.5)
        parts.append([max(0.0, angle_of(R[b]) - self.limits[b]) * 30.0 for b in self.BONES[1:]])
        parts.append(rotation_vector(self.R_hips_prior.T @ R["hips"]) / 2.5)
        if self.t.camera.ortho or len(self.obs) < 3:  # depth (or everything) not seen: stay near
            parts.append((x[:3] - self.p_prior) / (2.0 * self.sk.layout.height))
        return np.concatenate(parts)

    def _start_place(self):
        """Where the hips start: on the ray through the hips' midpoint (else below the neck),
        at the distance the torso's projected size implies."""
        t, sk_ = self.t, self.sk
        rest = {n: sk_.rest_point("body", B[n]) for n in sk.BODY_JOINTS}
        pairs = [("neck", "right_hip"), ("neck", "left_hip"), ("right_shoulder", "left_shoulder"),
                 ("right_hip", "left_hip"), ("neck", "right_shoulder"), ("neck", "left_shoulder"),
                 ("right_shoulder", "right_elbow"), ("left_shoulder", "left_elbow"), ("right_hip", "right_knee"),
                 ("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_knee", "left_ankle"),
                 ("right_elbow", "right_wrist"), ("left_elbow", "left_wrist"), ("nose", "neck")]
        if t.camera.ortho:
            distance = None
        else:
            ratios = []
            for a, b in pairs:
                if t.has("body", B[a]) and t.has("body", B[b]):
                    _, d = camera_rays(t.camera, np.array([t.xy("body", B[a]), t.xy("body", B[b])]))
                    angle = _angle(d[0], d[1])
                    if angle > 1e-6:
                        ratios.append(np.linalg.norm(rest[a] - rest[b]) / angle)
            distance = min(ratios) if ratios else None
        hips = [B["right_hip"], B["left_hip"]]
        if all(t.has("body", j) for j in hips):
            pixel = np.mean([t.xy("body", j) for j in hips], axis=0)
            offset = np.zeros(3)
        elif t.has("body", B["neck"]):
            pixel = t.xy("body", B["neck"])
            offset = self.R_hips_prior @ (self.h["hips"] - rest["neck"])
        else:
            return self.p_prior
        origin, direction = camera_rays(t.camera, pixel[None])
        if distance is None:  # orthographic: keep the current depth along the view
            distance = float((self.p_prior - origin[0]) @ direction[0])
        return origin[0] + direction[0] * distance + offset

    def solve(self, out):
        t = self.t
        seen = {n for n in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "nose",
                            "right_eye", "left_eye", "right_ear", "left_ear") if t.has("body", B[n])}
        if len(seen) + (3 if len([o for o in self.obs if o[0] == "face"]) >= 6 else 0) < 3:
            from ..errors import UserError
            raise UserError("the pose has too few points on the body to place it (it needs at least three of "
                            "neck, shoulders, hips, nose, eyes and ears): pick another person or file")
        place = self._start_place()
        tried = []
        for yaw in (0.0, 90.0, 180.0, 270.0):  # a few steps from each turn, then the best two go on
            starts = {b: self.prior.get(b, (I3, None))[0] for b in self.BONES}
            starts["hips"] = rotation([0, 0, math.radians(yaw)]) @ self.R_hips_prior
            x0 = np.concatenate([place, np.zeros(3 * len(self.BONES))])
            x, cost = least_squares(lambda v, s_=starts: self._residual(v, s_), x0, iterations=6)
            tried.append((cost, yaw, x, starts))
        tried.sort(key=lambda e: e[0])
        best = None
        for _, _, x0, starts in tried[:2]:
            x, cost = least_squares(lambda v, s_=starts: self._residual(v, s_), x0)
            if best is None or cost < best[0]:
                best = (cost, x, starts)
        _, x, starts = best
        R, _ = self._transforms(x, starts)
        for b in self.BONES:
            L = self.prior.get(b, (I3, None))[1]
            out.pose[b] = (R[b], L)
        out.pose["hips"] = (R["hips"], x[:3] - self.h["hips"])
        out.placed += ["hips", "spine", "chest"]
        if seen & {"nose", "right_eye", "left_eye", "right_ear", "left_ear"} or \
                any(o[0] == "face" for o in self.obs):
            out.placed += ["neck", "head"]
        else:
            out.unplaced.append(("head", "no nose, eyes, ears or face points"))
        for side, word in SIDE_WORDS:
            if f"{word}_shoulder" in seen:
                out.placed.append(f"shoulder.{side}")


def _frame_angle(Ga, a, Gb, b):
    """The angle between direction a seen in frame Ga and direction b seen in frame Gb."""
    return _angle(Ga.T @ a, Gb.T @ b)


def _limb(skeleton, targets, out, G, c, Gp, cp, side, word, kind, flips):
    """Place an arm (upper arm, forearm) or a leg (thigh, shin) by its joints' rays."""
    ix = skeleton.index
    if kind == "arm":
        upper, lower, parent = f"upper_arm.{side}", f"forearm.{side}", f"shoulder.{side}"
        mid_j, end_j = B[f"{word}_elbow"], B[f"{word}_wrist"]
        frame = "chest"
    else:
        upper, lower, parent = f"thigh.{side}", f"shin.{side}", "hips"
        mid_j, end_j = B[f"{word}_knee"], B[f"{word}_ankle"]
        frame = "hips"
    iu, il = ix[upper], ix[lower]
    start = G[iu] @ skeleton.head[iu] + c[iu]
    L1, L2 = skeleton.length(upper), skeleton.length(lower)
    d_rest_u = _unit(skeleton.tail[iu] - skeleton.head[iu])
    d_rest_l = _unit(skeleton.tail[il] - skeleton.head[il])
    Gf, Gf0 = G[ix[frame]], Gp[ix[frame]]
    u_prior = Gp[iu] @ d_rest_u
    l_prior = Gp[il] @ d_rest_l
    mid_xy = targets.has("body", mid_j)
    end_ok = targets.has("body", end_j)
    end_part, end_index = "body", end_j
    hand = f"{word}_hand"
    if kind == "arm" and not end_ok and targets.has(hand, 0):
        end_ok, end_part, end_index = True, hand, 0  # the hand's own wrist point stands in
    G_par = G[ix[parent]]

    def limits(u, lo):
        """How far (radians) a choice is outside the joint's range, plus a mild preference
        for limbs in front of the body (reaching back is rarer than forward)."""
        back = Gf @ np.array([0.0, 1.0, 0.0])
        v = max(0.0, math.asin(max(-1.0, min(1.0, float(u @ back)))) - math.radians(60 if kind == "arm" else 30))
        bend = np.cross(u, lo)
        if kind == "leg" and np.linalg.norm(bend) > math.sin(math.radians(12)):
            across = Gf @ np.array([1.0, 0.0, 0.0])
            across = across - (across @ u) * u
            v += max(0.0, _angle(bend, across) - math.radians(75))
        if _angle(u, lo) > math.radians(165):
            v += _angle(u, lo) - math.radians(165)
        return 3.0 * v + 0.15 * max(0.0, float(u @ back))

    candidates = []
    if mid_xy:
        o, d = targets.ray("body", mid_j)
        for mid, k1 in _roots(o, d, start, L1):
            u = _unit(mid - start)
            if end_ok:
                o2, d2 = targets.ray(end_part, end_index)
                ends = _roots(o2, d2, mid, L2)
            else:
                ends = [(mid + _kept_lower(skeleton, Gp, upper, lower, u) * L2, -2)]
            for end, k2 in ends:
                lo = _unit(end - mid)
                score = limits(u, lo) + _frame_angle(Gf, u, Gf0, u_prior) + 0.5 * _frame_angle(Gf, lo, Gf0, l_prior)
                candidates.append((score, k1, k2, mid, end))
        candidates.sort(key=lambda c_: c_[0])
        best = candidates[0]
        k1 = best[1]
        if upper in flips and k1 in (0, 1):
            k1 = 1 - k1
        pick = [c_ for c_ in candidates if c_[1] == k1] or candidates
        best = pick[0]
        k2 = best[2]
        if lower in flips and k2 in (0, 1):
            k2 = 1 - k2
            pick = [c_ for c_ in pick if c_[2] == k2] or pick
            best = pick[0]
        _, k1, k2, mid, end = best
        u, lo = _unit(mid - start), _unit(end - mid)
        for bone, k in ((upper, k1), (lower, k2)):
            if k == -1:
                out.notes.append(f"the rig's {bone_label(bone)} is too short for the picture's: placed as near as "
                                 "it reaches")
            if k in (0, 1):
                out.choices[bone] = ("towards", "away")[k] + " the camera"
        out.placed.append(upper)
        if end_ok:
            out.placed.append(lower)
        else:
            out.unplaced.append((bone_label(lower), f"no {word} {'wrist' if kind == 'arm' else 'ankle'}"))
    else:
        u = Gf @ (Gf0.T @ u_prior)  # kept as it was to the chest / hips
        mid = start + u * L1
        out.unplaced.append((bone_label(upper), f"no {word} {'elbow' if kind == 'arm' else 'knee'}"))
        if end_ok:
            o2, d2 = targets.ray(end_part, end_index)
            options = _roots(o2, d2, mid, L2)
            end, k2 = min(options, key=lambda e: _frame_angle(Gf, _unit(e[0] - mid), Gf0, l_prior))
            if lower in flips and k2 in (0, 1) and len(options) == 2:
                end, k2 = options[1 - k2]
            lo = _unit(end - mid)
            out.placed.append(lower)
        else:
            lo = Gf @ (Gf0.T @ l_prior)
            out.unplaced.append((bone_label(lower), f"no {word} {'wrist' if kind == 'arm' else 'ankle'}"))
    # rotations: the smallest swing from the bone's current direction keeps its twist
    R_u_prior = out.pose.get(upper, (I3, None))[0]
    G_u = G_par @ R_u_prior
    G_u = swing(G_u @ d_rest_u, u) @ G_u
    R_l_prior = out.pose.get(lower, (I3, None))[0]
    G_l = G_u @ R_l_prior
    G_l = swing(G_l @ d_rest_l, lo) @ G_l
    out.pose[upper] = (G_par.T @ G_u, out.pose.get(upper, (I3, None))[1])
    out.pose[lower] = (G_u.T @ G_l, out.pose.get(lower, (I3, None))[1])


def _kept_lower(skeleton, Gp, upper, lower, u):
    """The lower bone's direction when its end is missing: as it was to the upper bone, whose
    direction is now `u`."""
    iu, il = skeleton.index[upper], skeleton.index[lower]
    R_l = Gp[iu].T @ Gp[il]
    G_u = swing(Gp[iu] @ _unit(skeleton.tail[iu] - skeleton.head[iu]), u) @ Gp[iu]
    return (G_u @ R_l) @ _unit(skeleton.tail[il] - skeleton.head[il])


def _hand(skeleton, targets, out, G, c, Gp, side, word, flips):
    """The palm's rotation from its rigid points, then the fingers."""
    part = f"{word}_hand"
    ix = skeleton.index
    hand, forearm = ix[f"hand.{side}"], ix[f"forearm.{side}"]
    wrist = G[hand] @ skeleton.head[hand] + c[hand]
    palm = [j for j in PALM if targets.has(part, j)]
    G_forearm = G[forearm]
    R_rel_prior = out.pose.get(f"hand.{side}", (I3, None))[0]
    if len(palm) < 3:
        out.unplaced.append((f"{word} hand", "fewer than three of its knuckles"))
        return
    rest = np.array([skeleton.rest_point(part, j) - skeleton.head[hand] for j in palm])
    xy = np.array([targets.xy(part, j) for j in palm])
    w = np.array([targets.weight(part, j) for j in palm])
    axis_rest = _unit(skeleton.tail[hand] - skeleton.head[hand])
    scale = targets.sigma * 0.4  # hands are small: judge them at a finer scale than the body

    def residual(x, G0):
        Gh = G0 @ rotation(x)
        pts = wrist + rest @ Gh.T
        proj, depth = projection.project(targets.camera, pts)
        err = (proj - xy) / scale * w[:, None]
        err[depth <= 0] = 1e3
        R_rel = G_forearm.T @ Gh
        twist_axis = axis_rest
        sw = swing(twist_axis, R_rel @ twist_axis)
        twist = angle_of(sw.T @ R_rel)
        limit = max(0.0, _angle(twist_axis, R_rel @ twist_axis) - math.radians(85)) + \
            max(0.0, twist - math.radians(120))
        return np.concatenate([err.ravel(), rotation_vector(R_rel_prior.T @ R_rel) / 1.5, [limit * 30.0]])

    base = G_forearm @ R_rel_prior
    axis = base @ axis_rest
    solutions = []
    for turn in (0.0, 90.0, 180.0, 270.0):
        G0 = rotation(axis * math.radians(turn)) @ base
        x, cost = least_squares(lambda v: residual(v, G0), np.zeros(3))
        Gh = G0 @ rotation(x)
        normal = Gh @ np.array([0.0, 0.0, -1.0])  # the palm faces down at rest
        towards = float(normal @ _view_direction(targets.camera, wrist)) < 0
        solutions.append((cost, towards, Gh))
    solutions.sort(key=lambda s_: s_[0])
    cost, towards, Gh = solutions[0]
    key = f"hand.{side}"
    if key in flips:
        other = [s_ for s_ in solutions if s_[1] != towards]
        if other:
            cost, towards, Gh = other[0]
    out.choices[key] = "palm towards the camera" if towards else "palm away from the camera"
    out.pose[key] = (G_forearm.T @ Gh, out.pose.get(key, (I3, None))[1])
    out.placed.append(key)
    _fingers(skeleton, targets, out, Gh, wrist, side, word, scale)


def _view_direction(camera, point):
    """The unit direction the camera looks along at `point`."""
    back = np.linalg.inv(camera.world_to_camera)
    if camera.ortho:
        return _unit(back[:3, :3] @ np.array([0.0, 0.0, -1.0]))
    return _unit(point - back[:3, 3])


def _fingers(skeleton, targets, out, Gh, wrist, side, word, scale):
    part = f"{word}_hand"
    ix = skeleton.index
    s = 1.0 if side == "L" else -1.0
    flex_axis = np.array([0.0, s, 0.0])  # bends towards the palm (palms face down at rest)
    spread_axis = np.array([0.0, 0.0, 1.0])
    hand = ix[f"hand.{side}"]
    c_hand = wrist - Gh @ skeleton.head[hand]
    for f, finger in enumerate(sk.FINGERS):
        js = [1 + 4 * f + k for k in range(4)]
        seen = [k for k in (1, 2, 3) if targets.has(part, js[k])]
        bones = [ix[f"{finger}_{k:02d}.{side}"] for k in (1, 2, 3)]
        if not seen:
            out.unplaced.append((f"{word} {finger}", "no finger points"))
            continue
        limits = np.radians(FINGER_LIMITS["thumb" if finger == "thumb" else "other"])
        xy = np.array([targets.xy(part, js[k]) for k in seen])
        w = np.array([targets.weight(part, js[k]) for k in seen])

        def rotations(x):
            return (rotation(spread_axis * x[0]) @ rotation(flex_axis * x[1]), rotation(flex_axis * x[2]),
                    rotation(flex_axis * x[3]))

        def points(x):
            Rs = rotations(x)
            Gc, cc = Gh, c_hand
            pts = []
            for b, R in zip(bones, Rs):
                Gc, cc = _child(Gc, cc, R, skeleton.head[b])
                pts.append((Gc, cc, b))
            # joints 2, 3 are the heads of bones 02, 03; joint 4 the tail of bone 03
            out_pts = {2: pts[1][0] @ skeleton.head[bones[1]] + pts[1][1],
                       3: pts[2][0] @ skeleton.head[bones[2]] + pts[2][1],
                       4: pts[2][0] @ skeleton.tail[bones[2]] + pts[2][1]}
            return np.array([out_pts[k + 1] for k in seen])

        def residual(x):
            proj, depth = projection.project(targets.camera, points(x))
            err = (proj - xy) / scale * w[:, None]
            err[depth <= 0] = 1e3
            over = np.maximum(0.0, limits[:, 0] - x) + np.maximum(0.0, x - limits[:, 1])
            return np.concatenate([err.ravel(), over * 30.0, [x[0] * 0.3]])

        best = None
        for start in ((0.0, 0.3, 0.3, 0.2), (0.0, -0.1, 0.9, 0.6)):
            x, cost = least_squares(residual, np.array(start))
            if best is None or cost < best[0]:
                best = (cost, x)
        x = best[1]
        for b, R in zip(bones, rotations(x)):
            name = skeleton.names[b]
            out.pose[name] = (R, out.pose.get(name, (I3, None))[1])
        out.placed.append(f"{finger}.{side}")


def _foot(skeleton, targets, out, G, c, Gp, side, word):
    """The foot from its toes (BODY_25, COCO-WholeBody), else as it was to the shin."""
    ix = skeleton.index
    foot, shin = ix[f"foot.{side}"], ix[f"shin.{side}"]
    toes = [j for j in ((0, 1) if side == "L" else (3, 4)) if targets.has("feet", j)]
    R_prior = out.pose.get(f"foot.{side}", (I3, None))[0]
    if not toes:
        return
    ankle = G[foot] @ skeleton.head[foot] + c[foot]
    toe_xy = np.mean([targets.xy("feet", j) for j in toes], axis=0)
    o, d = camera_rays(targets.camera, toe_xy[None])
    length = skeleton.length(f"foot.{side}")
    G_shin = G[shin]
    shin_dir = G_shin @ _unit(skeleton.tail[shin] - skeleton.head[shin])
    d_rest = _unit(skeleton.tail[foot] - skeleton.head[foot])
    prior_dir = G_shin @ R_prior @ d_rest
    best = None
    for point, k in _roots(o[0], d[0], ankle, length):
        f_dir = _unit(point - ankle)
        bend = _angle(shin_dir, f_dir)
        score = 3.0 * (max(0.0, math.radians(45) - bend) + max(0.0, bend - math.radians(160))) + \
            _angle(f_dir, prior_dir)
        if best is None or score < best[0]:
            best = (score, f_dir)
    G_foot = G_shin @ R_prior
    G_foot = swing(G_foot @ d_rest, best[1]) @ G_foot
    out.pose[f"foot.{side}"] = (G_shin.T @ G_foot, out.pose.get(f"foot.{side}", (I3, None))[1])
    out.placed.append(f"foot.{side}")


def _expression(skeleton, targets, out, G, c):
    """Face points the fitted head misses move their face bones across the head, as far as
    MAX_EXPRESSION head units: the picture's expression."""
    head = skeleton.index["head"]
    moved = 0
    for j, (bone, _) in enumerate(skeleton.joints["face"]):
        if not targets.has("face", j):
            continue
        R, _ = out.pose.get(skeleton.names[bone], (I3, None))
        rest = skeleton.head[bone]
        at = G[head] @ rest + c[head]  # where the point sits with no expression
        o, d = targets.ray("face", j)
        view = _view_direction(targets.camera, at)
        # the target ray met at the point's own depth (the plane across the view)
        denom = float(d @ view)
        if abs(denom) < 1e-9:
            continue
        hit = o + d * float((at - o) @ view) / denom
        offset = G[head].T @ (hit - at)
        if np.linalg.norm(offset) > MAX_EXPRESSION * skeleton.hu:
            continue
        out.pose[skeleton.names[bone]] = (R, offset)
        moved += 1
    if moved:
        out.placed.append("face")


# ---------------------------------------------------------------------------------------------
# The rig's controls that drive the solved pose

def ik_controls(skeleton, pose, prior=None):
    """{bone: (R, L)} for the IK targets and poles (children of the root, which stays at rest)
    that make the rig's IK chains and copy-rotation constraints reach `pose`."""
    G, c = skeleton.transforms(pose)
    Gp, cp = skeleton.transforms(prior) if prior else (None, None)
    ix = skeleton.index
    out = {}
    for side, _ in SIDE_WORDS:
        for end, upper, lower, target, pole, rest_bend in (
                (f"hand.{side}", f"upper_arm.{side}", f"forearm.{side}", f"hand_ik.{side}", f"elbow_pole.{side}", 1.0),
                (f"foot.{side}", f"thigh.{side}", f"shin.{side}", f"foot_ik.{side}", f"knee_pole.{side}", -1.0)):
            ie, iu, il, it, ip = (ix[b] for b in (end, upper, lower, target, pole))
            tip = G[ie] @ skeleton.head[ie] + c[ie]
            out[target] = (G[ie].copy(), tip - skeleton.head[it])
            root = G[iu] @ skeleton.head[iu] + c[iu]
            mid = G[il] @ skeleton.head[il] + c[il]
            n = _unit(tip - root)
            bend = (mid - root) - float((mid - root) @ n) * n
            if np.linalg.norm(bend) < 1e-3 * skeleton.hu:  # a straight limb: the pole as it was
                old = (Gp[ip] @ skeleton.head[ip] + cp[ip]) - (Gp[il] @ skeleton.head[il] + cp[il]) if prior \
                    else np.array([0.0, rest_bend, 0.0])
                bend = old - float(old @ n) * n
                if np.linalg.norm(bend) < 1e-9:
                    bend = np.array([0.0, rest_bend, 0.0]) - rest_bend * n[1] * n
            distance = np.linalg.norm(skeleton.head[ip] - skeleton.head[il])
            out[pole] = (I3.copy(), mid + _unit(bend) * distance - skeleton.head[ip])
    return out
