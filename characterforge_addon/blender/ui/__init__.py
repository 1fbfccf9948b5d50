"""The sidebar: its panels, the add-on's settings (properties, preferences) and what operators share.
Operators live in the room of the code they drive."""
