"""A local HTTP server that answers the Hugging Face hub's routes huggingface_hub uses to
download (repo info, the file tree, HEAD and ranged GET of /resolve/), for repositories held
in memory: the real hub is out of reach here. It can gate a repo (401 GatedRepo) and stall a
file after some bytes (to cancel a download half-way and resume it)."""

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHA = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self, repos, gated=(), stall=None, listed_sizes=None):
        """repos: {repo: {path: bytes}}; stall: (path, after_bytes) served that far, then held;
        listed_sizes: {path: size} the tree claims instead of the real one (a huge model)."""
        self.repos, self.gated, self.stall, self.listed_sizes = repos, set(gated), stall, listed_sizes or {}
        self.ranges = []  # (path, first byte) of every ranged GET: resumes
        self.fetched = []  # paths whose bytes were sent
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _lfs(data):
    return len(data) > 100  # large files are LFS on the hub: their ETag is the sha256


class _Handler(BaseHTTPRequestHandler):
    hub = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, value, code=200, headers=()):
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self):
        path = self.path.split("?")[0]
        m = re.match(r"^/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)", path)
        if m:
            return ("api", m.group(1), m.group(2))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return ("file", m.group(1), m.group(3))
        return (None, None, None)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        kind, repo, rest = self._route()
        files = self.hub.repos.get(repo)
        if kind is None or files is None:
            return self._json({"error": "Repository not found"}, 401, [("X-Error-Code", "RepoNotFound")])
        if kind == "api":
            if rest == "revision":
                return self._json({"id": repo, "modelId": repo, "sha": SHA, "private": False,
                                   "gated": "manual" if repo in self.hub.gated else False,
                                   "siblings": [{"rfilename": p} for p in files]})
            return self._json([self._entry(p, d) for p, d in files.items()])
        if repo in self.hub.gated:
            return self._json({"error": f"Access to model {repo} is restricted. You must have access to it and be "
                               "authenticated to access it. Please log in."}, 401, [("X-Error-Code", "GatedRepo")])
        data = files.get(rest)
        if data is None:
            return self._json({"error": "Entry not found"}, 404, [("X-Error-Code", "EntryNotFound")])
        self._send_file(rest, data)

    def _entry(self, path, data):
        size = self.hub.listed_sizes.get(path, len(data))
        entry = {"type": "file", "path": path, "size": size, "oid": hashlib.sha1(data).hexdigest()}
        if _lfs(data):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
        return entry

    def _send_file(self, path, data):
        etag = hashlib.sha256(data).hexdigest() if _lfs(data) else hashlib.sha1(data).hexdigest()
        start = 0
        match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and self.command == "GET":
            start = int(match.group(1))
            self.hub.ranges.append((path, start))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", SHA)
        self.send_header("ETag", f'"{etag}"')
        listed = self.hub.listed_sizes.get(path, len(data)) if self.command == "HEAD" else len(data)
        if _lfs(data):
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(listed))
        self.send_header("Content-Length", str(listed - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        stall_path, after = self.hub.stall or (None, 0)
        if path == stall_path and start < after:
            self.wfile.write(data[start:after])
            self.wfile.flush()
            time.sleep(60)  # held: the test cancels the download meanwhile
            return
        self.hub.fetched.append(path)
        self.wfile.write(data[start:])
