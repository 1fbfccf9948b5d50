"""Job specs: the one declared table per job kind (fields, types, limits, defaults) that the add-on and
the backend both validate with, and the names of the fast path's speed-ups. Pure: stdlib and numpy."""
