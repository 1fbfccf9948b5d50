"""Download a profile's models from the Hugging Face hub: only the files each role's loader
reads (model_files.py), into the normal Hugging Face cache so other tools find them too,
with progress (bytes, speed, time left), a free-disk check first, resume after a cancel or a
crash (huggingface_hub continues its `.incomplete` files), clear errors for gated repos and
missing logins, and FaceID's pickle converted to safetensors as soon as it arrives.

Run as `python -m characterforge_addon.backend download`: the panel starts it in the
backend's Python, reads its JSON progress lines and cancels it by ending the process.
"""

import json
import os
import shutil
import sys
import threading
import time

from ...core.errors import UserError
from . import models
from .model_files import for_profile

DISK_MARGIN = 1.05  # room beyond the files themselves (the cache's links, the converted FaceID copy)


class Plan:
    """What a download of `roles` fetches: [(RepoFiles, [(file, size, cached)])]."""

    def __init__(self, items, commits):
        self.items, self.commits = items, commits  # commits: repo -> the revision listed, fetched as is

    @property
    def total(self):
        return sum(size for _, files in self.items for _, size, _ in files)

    @property
    def to_fetch(self):
        return sum(size for _, files in self.items for _, size, cached in files if not cached)


def choose(profile, optional_roles=(), accept_non_commercial=False):
    """The RepoFiles to download: the core roles, and each optional role asked for."""
    from .profiles import CORE_ROLES
    wanted = []
    unknown = sorted(set(optional_roles) - set(profile.models))
    if unknown:
        raise UserError(f"profile {profile.name} has no role {unknown[0]}; its roles: {', '.join(profile.models)}")
    for files in for_profile(profile):
        if files.role not in CORE_ROLES and files.role not in optional_roles:
            continue
        if files.non_commercial and not accept_non_commercial:
            raise UserError(f"{files.role} ({files.repo}) is licensed for {files.licence} only: tick 'I accept the "
                            "non-commercial licence' (command line: --accept-non-commercial) or leave it out")
        wanted.append(files)
    for role in optional_roles:
        source = profile.models[role]
        if source.kind in ("folder", "file"):
            try:
                models.check(source, "")
            except models.ModelMissing as exc:
                raise UserError(f"{role} does not come from the Hugging Face hub: {exc.fix}") from None
    return wanted


def _hub_error(exc, repo):
    """A UserError saying what to do for huggingface_hub's errors."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )
    page = f"https://huggingface.co/{repo}"
    if isinstance(exc, GatedRepoError):
        return UserError(f"{repo} is gated: open {page} while logged in and accept its terms, then give the backend a "
                         "read token (https://huggingface.co/settings/tokens) with `hf auth login` or in the HF_TOKEN "
                         "environment variable, and download again")
    if isinstance(exc, RepositoryNotFoundError):
        return UserError(f"{repo} was not found or is private ({page}): check the repo id in the profile, or log in "
                         "with `hf auth login` if it is yours")
    if isinstance(exc, OfflineModeIsEnabled):
        return UserError("downloads are off (HF_HUB_OFFLINE is set): unset it to download")
    network = type(exc).__module__.split(".")[0] in ("httpx", "httpx2")  # timeouts, refused connections
    if network or isinstance(exc, (LocalEntryNotFoundError, HfHubHTTPError, OSError)):
        return UserError(f"could not download from {repo}: {str(exc).splitlines()[0]}: check the internet connection; "
                         "press Download Models again to resume where it stopped")
    return None


def plan(chosen, token=None):
    """Sizes of every file to download and whether it is cached, asked of the hub (no bytes fetched)."""
    from huggingface_hub import snapshot_download
    items, commits = [], {}
    for files in chosen:
        try:
            found = snapshot_download(files.repo, allow_patterns=list(files.include),
                                      ignore_patterns=list(files.exclude) or None, token=token, dry_run=True)
        except Exception as exc:  # huggingface_hub's errors, turned into what to do
            raise (_hub_error(exc, files.repo) or exc) from None
        if not found:
            raise UserError(f"{files.repo} has none of the files {files.role} needs ({', '.join(files.include[:3])}…): "
                            "the repo changed or the profile names the wrong one")
        items.append((files, [(f.filename, f.file_size or 0, f.is_cached) for f in found]))
        commits[files.repo] = found[0].commit_hash
    return Plan(items, commits)


def check_disk(the_plan, cache_dir):
    os.makedirs(cache_dir, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    need = the_plan.to_fetch * DISK_MARGIN
    if need > free:
        raise UserError(f"not enough disk space in {cache_dir}: the models need {need / 2**30:.1f} GB, "
                        f"{free / 2**30:.1f} GB is free; free space there or set HF_HOME to a bigger disk")


def _blob_bytes(cache_dir, repo):
    """Bytes in the repo's cache blobs, finished and `.incomplete` ones."""
    folder = os.path.join(cache_dir, "models--" + repo.replace("/", "--"), "blobs")
    try:
        return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())
    except OSError:
        return 0


def fetch(the_plan, cache_dir, report, token=None):
    """Download the plan, calling `report(role, done, total, speed, eta_s)` about twice a
    second; progress is measured from the cache's blobs, so resumed bytes count as done."""
    total, base = the_plan.total, the_plan.total - the_plan.to_fetch
    started, done_before = time.monotonic(), 0
    for files, listed in the_plan.items:
        stop = threading.Event()
        at_start = _blob_bytes(cache_dir, files.repo)

        def watch(files=files, at_start=at_start):
            while not stop.wait(0.5):
                here = _blob_bytes(cache_dir, files.repo) - at_start
                done = min(total, base + done_before + here)
                speed = (done - base) / max(time.monotonic() - started, 1e-3)
                report(files.role, done, total, speed, (total - done) / speed if speed > 0 else None)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            for name, size, cached in listed:
                if not cached:
                    _fetch_file(files.repo, name, the_plan.commits[files.repo], cache_dir, token)
        except Exception as exc:
            raise (_write_error(exc, cache_dir) or _hub_error(exc, files.repo) or exc) from None
        finally:
            stop.set()
            watcher.join()
        done_before += sum(size for _, size, was in listed if not was)
        _convert_pickles(_snapshot_of(cache_dir, files.repo, the_plan.commits[files.repo]), files)
    report("", total, total, 0.0, 0.0)


def _snapshot_of(cache_dir, repo, commit):
    return os.path.join(cache_dir, "models--" + repo.replace("/", "--"), "snapshots", commit)


def _fetch_file(repo, name, commit, cache_dir, token):
    """One file into the cache, continuing a partial one left by a cancel or a crash.

    huggingface_hub downloads into a fresh temporary file per process (so a killed download
    starts again from zero); its `http_get` resumes from an offset: the bytes go to
    `blobs/<etag>.partial`, checked against the hub's sha256, and `hf_hub_download` then finds
    the blob and links it into the snapshot as usual."""
    import hashlib

    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    meta = get_hf_file_metadata(hf_hub_url(repo, name, revision=commit), token=token)
    blob = os.path.join(cache_dir, "models--" + repo.replace("/", "--"), "blobs", meta.etag)
    if not os.path.isfile(blob):
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        partial = blob + ".partial"
        with open(partial, "ab") as f:
            if f.tell() != meta.size:
                http_get(meta.location, f, resume_size=f.tell(), headers=build_hf_headers(token=token),
                         expected_size=meta.size, displayed_filename=name)
        if len(meta.etag) == 64:  # LFS files: the ETag is the content's sha256
            digest = hashlib.sha256()
            with open(partial, "rb") as f:
                for chunk in iter(lambda: f.read(2**24), b""):
                    digest.update(chunk)
            if digest.hexdigest() != meta.etag:
                os.remove(partial)
                raise UserError(f"{repo}/{name} arrived damaged (its checksum differs): it was removed; press "
                                "Download Models again to fetch it anew")
        os.replace(partial, blob)
    hf_hub_download(repo, name, revision=commit, token=token)


def _write_error(exc, cache_dir):
    import errno
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return UserError(f"could not save the download in {cache_dir} ({exc.strerror}): free disk space there (or set "
                         "HF_HOME to a bigger disk), then press Download Models again to resume")
    return None


def _convert_pickles(folder, files):
    """FaceID is published as a pickle: convert it to safetensors now (weights only), once."""
    for pattern in files.include:
        path = os.path.join(folder, pattern)
        if path.endswith(models.PICKLE_SUFFIXES) and os.path.isfile(path):
            target = os.path.splitext(path)[0] + ".safetensors"
            if not os.path.isfile(target):
                models.convert(path, target)


def main(profile, roles, accept_non_commercial, dry_run, as_json=False):
    """The `download` command: exit 0 when everything asked for is in the cache."""
    def say(event, **values):
        if as_json:
            print(json.dumps(dict(event=event, **values)), flush=True)
        elif event == "plan":
            for entry in values["roles"]:
                print(f"{entry['role']}: {entry['repo']} {entry['files']} files, {entry['bytes'] / 2**30:.2f} GB "
                      f"({entry['licence']})\n  {entry['command']}")
            print(f"to download: {values['to_fetch'] / 2**30:.2f} of {values['total'] / 2**30:.2f} GB")
        elif event == "progress":
            eta = f", {values['eta_s'] / 60:.0f} min left" if values["eta_s"] else ""
            print(f"\r{values['done'] / 2**30:.2f} of {values['total'] / 2**30:.2f} GB "
                  f"({values['speed'] / 2**20:.1f} MB/s{eta}) {values['role']}   ", end="", file=sys.stderr, flush=True)

    try:
        chosen = choose(profile, roles, accept_non_commercial)
        the_plan = plan(chosen)
        say("plan", total=the_plan.total, to_fetch=the_plan.to_fetch, roles=[
            {"role": f.role, "repo": f.repo, "files": len(listed), "bytes": sum(s for _, s, _ in listed),
             "licence": f.licence, "command": f.hf_command()} for f, listed in the_plan.items])
        if dry_run:
            return 0
        cache = models.hf_cache_dir()
        check_disk(the_plan, cache)
        fetch(the_plan, cache, lambda role, done, total, speed, eta: say(
            "progress", role=role, done=done, total=total, speed=speed, eta_s=eta))
    except UserError as exc:
        say("error", message=str(exc))
        if not as_json:
            print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    say("done", total=the_plan.total)
    if not as_json:
        print("\nall models are in the Hugging Face cache", file=sys.stderr)
    return 0
