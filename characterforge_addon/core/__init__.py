"""Pure logic: imports only the standard library and numpy, never bpy or torch."""
