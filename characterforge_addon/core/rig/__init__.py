"""The OpenPose rig without Blender: the keypoint spec, the rig's layout and own-rig mappings, poses and
pose files, the proxy body's geometry, and camera projection. Pure: stdlib and numpy."""
