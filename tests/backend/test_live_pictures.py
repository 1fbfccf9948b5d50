"""Pictures by hash (live mode sends only what changed): the one validator takes "sha256:<hex>"
wherever it takes a picture; the backend keeps pictures sent with PUT /pictures/<sha256>,
refuses before queueing a job naming one it lacks (saying which), and runs a job by hash
exactly as the same job sent inline; the add-on's sender uploads each picture once and again
only when the backend dropped it. And which profiles can draft, as the add-on reads it from
the profile files, agrees with the backend's families."""

import base64
import hashlib
import io
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import completed_job, png_b64, spec


def sha_of(b64):
    return hashlib.sha256(base64.b64decode(b64)).hexdigest()


def test_the_validator_takes_a_picture_by_hash_wherever_it_takes_one_inline():
    from characterforge_addon.core.spec.job_spec import JobSpecError, map_image_fields, picture_refs, validate_job
    inline = validate_job(spec(identity={"images": [png_b64(32, 32, (200, 0, 0)), png_b64()]}))
    refs = map_image_fields(inline, lambda field, value: f"sha256:{sha_of(value)}")
    checked = validate_job(refs)
    assert picture_refs(checked) == {"controls.openpose.image": sha_of(png_b64()),
                                     "identity.images[0]": sha_of(png_b64(32, 32, (200, 0, 0))),
                                     "identity.images[1]": sha_of(png_b64())}
    for bad in ("sha256:" + "0" * 63, "sha256:" + "A" * 64, "sha256:"):
        with pytest.raises(JobSpecError) as refused:
            validate_job(spec(controls={"openpose": {"image": bad}}))
        assert refused.value.field == "controls.openpose.image" and "SHA-256" in str(refused.value)


def test_a_job_naming_a_picture_the_backend_lacks_is_refused_before_queueing(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    pose, face = png_b64(64, 64, (0, 0, 0)), png_b64(48, 48, (230, 180, 150))
    job = spec(controls={"openpose": {"image": pose}}, identity={"images": [f"sha256:{sha_of(face)}"]})
    answer = client.post("/jobs", json=job, headers=headers)
    assert answer.status_code == 400 and answer.json()["type"] == "missing_pictures"
    assert answer.json()["details"] == {"field": "identity.images[0]", "missing": [sha_of(face)]}
    assert "PUT /pictures/" in answer.json()["fix"] and backend.store.count("pending") == 0
    # what the store refuses: another picture's bytes, bytes that are no PNG, a name that is no hash
    assert client.put(f"/pictures/{sha_of(pose)}", content=base64.b64decode(face), headers=headers).status_code == 400
    junk = b"not a picture"
    refused = client.put(f"/pictures/{hashlib.sha256(junk).hexdigest()}", content=junk, headers=headers)
    assert refused.status_code == 400 and "not a PNG" in refused.json()["message"]
    assert client.put("/pictures/abc", content=junk, headers=headers).json()["type"] == "invalid_name"
    assert client.get(f"/pictures/{sha_of(face)}", headers=headers).status_code == 404
    sent = client.put(f"/pictures/{sha_of(face)}", content=base64.b64decode(face), headers=headers)
    assert sent.status_code == 201 and sent.json()["kept"] == "now"
    again = client.put(f"/pictures/{sha_of(face)}", content=base64.b64decode(face), headers=headers)
    assert again.json()["kept"] == "already"
    assert client.get(f"/pictures/{sha_of(face)}", headers=headers).json()["bytes"] == len(base64.b64decode(face))
    assert client.post("/jobs", json=job, headers=headers).status_code == 201


def test_a_job_by_hash_makes_the_very_picture_of_the_same_job_sent_inline(make_backend):
    backend = make_backend()
    job = spec(draft=True, identity={"images": [png_b64(64, 64, (250, 20, 20))]},
               controls={"openpose": {"image": png_b64(64, 64, (10, 10, 10))}, "depth": {"image": png_b64()}})
    client, headers, status = completed_job(backend, job)
    inline = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers).content
    for field_value in (job["identity"]["images"][0], job["controls"]["openpose"]["image"]):
        client.put(f"/pictures/{sha_of(field_value)}", content=base64.b64decode(field_value), headers=headers)
    by_hash = dict(job, identity={"images": [f"sha256:{sha_of(job['identity']['images'][0])}"]},
                   controls={"openpose": {"image": f"sha256:{sha_of(job['controls']['openpose']['image'])}"},
                             "depth": job["controls"]["depth"]})
    _, _, status = completed_job(backend, by_hash)
    again = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers).content
    pixels = [np.asarray(Image.open(io.BytesIO(png))) for png in (inline, again)]
    assert np.array_equal(*pixels)


def test_the_store_drops_the_least_recently_used_pictures_past_its_cap(tmp_path):
    from characterforge_addon.backend.serving.picture_store import PictureStore
    pngs = [base64.b64decode(png_b64(64, 64, (i * 40, 0, 0))) for i in range(4)]
    shas = [hashlib.sha256(p).hexdigest() for p in pngs]
    store = PictureStore(str(tmp_path), max_bytes=sum(map(len, pngs[:3])))
    for sha, png in zip(shas[:3], pngs[:3]):
        assert store.keep(sha, png)
        os.utime(store.path(sha), None)
    assert store.read(shas[0]) == pngs[0]  # used again: the second is now the oldest
    store.keep(shas[3], pngs[3])
    assert [store.has(s) for s in shas] == [True, False, True, True]
    assert PictureStore(str(tmp_path)).has(shas[3])  # kept across a restart


def test_the_sender_uploads_each_picture_once_and_again_when_the_backend_dropped_it(start_server):
    from characterforge_addon.client.backend_client import BackendClient
    from characterforge_addon.client.pictures import PictureSender
    from characterforge_addon.core.spec.job_spec import validate_job
    server = start_server()
    client = BackendClient(server.url, server.token)
    face = png_b64(48, 48, (230, 180, 150))
    sender = PictureSender()
    for shade in (10, 20, 20):  # three jobs: the pose map changes once, the face never
        job = validate_job(spec(controls={"openpose": {"image": png_b64(64, 64, (shade, 0, 0))}},
                                identity={"images": [face]}))
        sender.submit(client, job)
    assert [sha for sha, _ in sender.uploads] == [sha_of(png_b64(64, 64, (10, 0, 0))), sha_of(face),
                                                  sha_of(png_b64(64, 64, (20, 0, 0)))]
    os.unlink(os.path.join(server.data, "pictures", f"{sha_of(face)}.png"))  # dropped by the backend
    _, stats = sender.submit(client, job)
    assert stats == {"pictures": 2, "uploaded": 1, "bytes": len(base64.b64decode(face))}
    assert sender.uploads[-1][0] == sha_of(face) and client.has_picture(sha_of(face))


def test_which_profiles_can_draft_agrees_with_the_families(tmp_path):
    """The add-on decides from the profile files alone (it imports no backend code); the
    backend's families decide by their capabilities: the two must give the same answer."""
    from characterforge_addon.backend.families import capabilities, FAMILIES
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.setup.profile_list import draft_support, DRAFT_ROLES
    assert set(FAMILIES) <= set(DRAFT_ROLES)
    with open(os.path.join(profiles.BUILTIN_DIR, "sdxl.toml")) as f:
        text = f.read().replace('name = "sdxl"', 'name = "sdxl-no-draft"').split("[models.draft_lora]")
    (tmp_path / "sdxl-no-draft.toml").write_text(text[0] + "\n[" + text[1].split("\n[", 1)[1])
    folders = [str(tmp_path), profiles.BUILTIN_DIR]
    everyone = profiles.all_profiles((str(tmp_path),))
    assert "sdxl-no-draft" in {p.name for p in everyone}
    for profile in everyone:
        able, why = draft_support(folders, profile.name)
        assert able == ("draft" in capabilities(profile)), (profile.name, why)
    able, why = draft_support(folders, "sdxl-no-draft")
    assert not able and "draft_lora" in why and 'repo = "h1t/TCD-SDXL-LoRA"' in why and "Download Models" in why
    assert "use profile sdxl" in why
