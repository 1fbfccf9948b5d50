"""Jobs from the scene: what every job takes from it, the worker thread that talks to the
backend, running a result's job again, the profile menu, and results back as image planes."""
