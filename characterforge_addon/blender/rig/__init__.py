"""The OpenPose rig in Blender: building it, posing it, and where its joints land in a camera."""
