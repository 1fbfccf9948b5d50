"""The add-on's side of the bundled backend: its process (start, find, stop), one-step set-up of
its environment, model downloads, and their operators."""
