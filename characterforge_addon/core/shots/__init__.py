"""Shots, sets and moving shots: regions picked from keypoints, a set's projection rule, carrying
frames over by Blender's motion. Pure: stdlib and numpy."""
