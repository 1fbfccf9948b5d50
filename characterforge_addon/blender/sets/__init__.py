"""Sets that hold across cameras: the background projected onto the set's geometry, fills from
new cameras, and their operators."""
