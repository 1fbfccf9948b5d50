"""Identity adapters, loaded once into the shared UNet and switched per job by scale:
IP-Adapter plus-face (reference pictures through the CLIP image encoder), when the profile has
it and it loads IP-Adapter FaceID (an insightface embedding of the face), and the appearance
adapter (a plain IP-Adapter, not plus-face: the pack's mean appearance embedding, the look of
an object, a creature or a costume, from the same image encoder).

With more than one loaded, diffusers takes either pictures or embeddings for all adapters, so
the plus-face embeddings are computed here and all go in as `ip_adapter_image_embeds`.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ...core.errors import UserError
from ..models import models


@dataclass
class Region:
    """One character's identity and where it applies: `mask` a PIL "L" image of the output."""
    references: list   # PIL images (may be empty: no identity, scale 0 there)
    embedding: object  # unit insightface vector or None
    scale: float
    faceid_scale: float
    mask: object
    appearance: object = None  # the pack's mean appearance embedding or None
    appearance_scale: float = 0.0


class Adapters:
    def __init__(self, engine):
        self.engine = engine
        self.loaded = False
        self.faceid = False        # FaceID loaded next to plus-face
        self.faceid_missing = ""   # why not, when the profile names it
        self.appearance = False    # the appearance adapter loaded (after the others)
        self.appearance_missing = ""

    def names(self):
        """The adapters loaded, for the output's record (and why FaceID is not, if named)."""
        if not self.loaded:
            return []
        return ["plus_face"] + (["faceid"] if self.faceid else [f"faceid unavailable: {self.faceid_missing}"]
                                if self.faceid_missing else []) + (
            ["appearance"] if self.appearance else [f"appearance unavailable: {self.appearance_missing}"]
            if self.appearance_missing else [])

    def load(self):
        if self.loaded:
            return
        engine = self.engine
        profile = engine.profile
        missing = [r for r in ("image_encoder", "ip_adapter_plus_face") if r not in profile.models]
        if missing:
            raise UserError(f"profile {profile.name} has no {' or '.join(missing)}, needed for identity from "
                            "reference images: add them (see the sdxl profile) or send no reference images")
        base = engine.base()
        encoder, processor = engine.appearance.encoder()  # one image encoder for adapters and appearance
        roles = ["ip_adapter_plus_face"]
        for role, why in (("ip_adapter_faceid", "faceid_missing"), ("ip_adapter_appearance", "appearance_missing")):
            if role in profile.models:
                try:
                    models.check(profile.models[role], engine.models_dir)
                    roles.append(role)
                except models.ModelMissing as exc:
                    setattr(self, why, str(exc))
        folders, subfolders, weights = [], [], []
        for role in roles:
            source = profile.models[role]
            where, _ = models.resolve_for_loading(source, engine.models_dir, engine.allow_download)
            if os.path.isfile(where):
                folders.append(os.path.dirname(where))
                subfolders.append("")
                weights.append(os.path.basename(where))
            else:  # a repo to download (--allow-download)
                folders.append(where)
                subfolders.append(source.subfolder)
                weights.append(source.weight)
        with engine.changing_weights():
            base.register_modules(image_encoder=encoder, feature_extractor=processor)
            base.load_ip_adapter(folders, subfolder=subfolders, weight_name=weights, image_encoder_folder=None)
            for pipe in engine._variants.values():
                pipe.register_modules(image_encoder=encoder, feature_extractor=processor)
        self.faceid = "ip_adapter_faceid" in roles
        self.appearance = "ip_adapter_appearance" in roles
        self.loaded = True

    def _look(self, pipe, appearance, cfg):
        """The appearance adapter's embeddings: (2 with CFG, n, dim) from `appearance` (a list of
        n mean embeddings or None); zeros where there is none."""
        dim = pipe.unet.encoder_hid_proj.image_projection_layers[-1].image_embeds.in_features
        rows = []
        for vector in appearance:
            if vector is not None and len(vector) != dim:
                raise UserError(f"the pack's appearance embedding has {len(vector)} numbers but this profile's image "
                                f"encoder makes {dim}: it was made with another image encoder; make the character's "
                                "sheet again with this profile (or set its look's scale to 0)")
            rows.append(torch.zeros(dim) if vector is None else torch.tensor(np.asarray(vector, dtype=np.float32)))
        look = torch.stack(rows)[None]
        return torch.cat([torch.zeros_like(look), look]) if cfg else look

    def kwargs(self, pipe, spec, references, embedding=None):
        """Pipeline arguments for a job: its references (PIL images) at its scale, FaceID from
        `embedding` (unit insightface vector) when loaded; everything at scale 0 once loaded and
        the job has no identity."""
        identity = spec.get("identity", {})
        look = identity.get("appearance")
        if not references and not look and not self.loaded:
            return {}
        self.load()
        plus_scale = identity.get("scale", 0.0) if references else 0.0
        if not self.faceid and not self.appearance:
            pipe.set_ip_adapter_scale(plus_scale)
            return {"ip_adapter_image": [references or [Image.new("RGB", (64, 64))]]}
        cfg = spec["guidance"] > 1.0
        device = self.engine.device
        with torch.no_grad():
            pos, neg = pipe.encode_image(references or [Image.new("RGB", (64, 64))], device, 1, True)
        plus = torch.cat([neg[None], pos[None]]) if cfg else pos[None]
        embeds, scales = [plus.to(self.engine.dtype)], [plus_scale]
        if self.faceid:
            faceid_scale = identity.get("faceid_scale", 0.6) if embedding is not None else 0.0
            dim = pipe.unet.encoder_hid_proj.image_projection_layers[1].ff.net[0].proj.in_features
            vector = torch.zeros(1, 1, 1, dim) if embedding is None else torch.tensor(
                np.asarray(embedding, dtype=np.float32)).reshape(1, 1, 1, dim)
            face = torch.cat([torch.zeros_like(vector), vector]) if cfg else vector
            embeds.append(face.to(device, self.engine.dtype))
            scales.append(faceid_scale)
        if self.appearance:
            embeds.append(self._look(pipe, [look["embedding"] if look else None], cfg).to(device, self.engine.dtype))
            scales.append(look["scale"] if look else 0.0)
        pipe.set_ip_adapter_scale(scales)
        return {"ip_adapter_image_embeds": embeds}

    def regional_kwargs(self, pipe, spec, regions, height, width):
        """Pipeline arguments giving each region its own identity: one "image" per character
        in every adapter, each limited to its mask by diffusers' IP-Adapter attention masks, so
        two characters' identities do not mix. A character's reference crops are averaged."""
        from diffusers.image_processor import IPAdapterMaskProcessor
        self.load()
        n = len(regions)
        masks = IPAdapterMaskProcessor().preprocess([r.mask for r in regions], height=height, width=width)
        masks = masks.reshape(1, n, height, width)
        cfg = spec["guidance"] > 1.0
        device, dtype = self.engine.device, self.engine.dtype
        pos, neg = [], []
        with torch.no_grad():
            for r in regions:
                p, q = pipe.encode_image(r.references or [Image.new("RGB", (64, 64))], device, 1, True)
                pos.append(p.mean(0))
                neg.append(q.mean(0))
        pos, neg = torch.stack(pos)[None], torch.stack(neg)[None]
        embeds = [(torch.cat([neg, pos]) if cfg else pos).to(dtype)]
        scales = [[r.scale if r.references else 0.0 for r in regions]]
        if self.faceid:
            dim = pipe.unet.encoder_hid_proj.image_projection_layers[1].ff.net[0].proj.in_features
            vectors = torch.stack([torch.zeros(1, dim) if r.embedding is None else
                                   torch.tensor(np.asarray(r.embedding, dtype=np.float32)).reshape(1, dim)
                                   for r in regions])[None]
            embeds.append((torch.cat([torch.zeros_like(vectors), vectors]) if cfg else vectors).to(device, dtype))
            scales.append([r.faceid_scale if r.embedding is not None else 0.0 for r in regions])
        if self.appearance:
            embeds.append(self._look(pipe, [r.appearance for r in regions], cfg).to(device, dtype))
            scales.append([r.appearance_scale if r.appearance is not None else 0.0 for r in regions])
        pipe.set_ip_adapter_scale(scales)
        return {"ip_adapter_image_embeds": embeds,
                "cross_attention_kwargs": {"ip_adapter_masks": [masks] * len(embeds)}}
