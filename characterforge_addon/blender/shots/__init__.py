"""Shots: characters composited into a background, expression edits, moving shots frame by frame,
and their operators."""
