"""Control maps as pictures: OpenPose drawing and depth/normal maps. Pure: stdlib and numpy."""
