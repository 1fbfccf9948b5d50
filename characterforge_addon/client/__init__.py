"""Pure-Python (stdlib) client for the backend's HTTP API, used by the add-on."""
