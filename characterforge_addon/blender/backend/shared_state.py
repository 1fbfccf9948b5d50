"""State a worker thread writes and the panel reads: a dict behind a lock."""

import threading


class SharedState:
    def __init__(self, **initial):
        self._lock = threading.Lock()
        self._values = dict(initial)

    def get(self):
        """A copy, safe to read while the worker writes."""
        with self._lock:
            return dict(self._values)

    def set(self, **values):
        with self._lock:
            self._values.update(values)
