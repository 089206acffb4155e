"""Adding layers to an image that exists, without a build and without a container.

A build (even one whose every step is cached) or a container commit costs the
engine several calls and a container's life; adding a few-KB layer needs
neither. Docker's ``load`` takes an image as a tar of its config, a manifest
and its layer tars, and skips every layer it already has (looked up by the
chain of diff ids), so a tar carrying the new config and *only the new
layers* adds them on top of the existing ones in one call, with the same
result a ``COPY`` step would give: the same files, the same layer digests.

Used for the bundle layer of every job image, and for the code layer of a
one-file change (only the files that changed, on top of the previous
environment image; see :mod:`nemo_run_k8s.image.builder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class NewImage:
    """An image to add: ``ref`` (repo:tag), its layers on top of the parent, its labels."""

    ref: str
    layers: tuple[bytes, ...]
    labels: dict[str, str]


def diff_id(layer: bytes) -> str:
    """The diff id of an uncompressed layer tar (what ``RootFS.Layers`` lists)."""
    return "sha256:" + hashlib.sha256(layer).hexdigest()


def image_config(parent: dict[str, Any], layers: Sequence[bytes], labels: dict[str, str]) -> bytes:
    """The config of ``parent`` (an image inspect) with ``layers`` on top and ``labels``.

    The image id of the result is the sha256 of these bytes. The parent's build
    history is not part of an inspect, so the new image carries none.
    """
    config = dict(parent.get("Config") or {})
    config["Labels"] = labels
    document = {
        "architecture": parent.get("Architecture", "amd64"),
        "os": parent.get("Os", "linux"),
        "config": config,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rootfs": {
            "type": "layers",
            "diff_ids": [*parent["RootFS"]["Layers"], *(diff_id(lay) for lay in layers)],
        },
        "history": [],
    }
    if parent.get("Variant"):
        document["variant"] = parent["Variant"]
    return json.dumps(document, sort_keys=True).encode()


def load_archive(parent: dict[str, Any], images: Sequence[NewImage]) -> tuple[bytes, list[str]]:
    """The ``docker load`` tar adding ``images`` on top of ``parent``; and their image ids.

    Layers the engine has (the parent's) are named in the manifest but not
    included; each new layer is included once, however many images use it.
    """
    members: dict[str, bytes] = {}
    manifest, ids = [], []
    parent_layers = [f"{d.split(':', 1)[1]}/layer.tar" for d in parent["RootFS"]["Layers"]]
    for image in images:
        config = image_config(parent, image.layers, image.labels)
        image_id = hashlib.sha256(config).hexdigest()
        members[f"{image_id}.json"] = config
        new_layers = []
        for layer in image.layers:
            name = f"{diff_id(layer).split(':', 1)[1]}/layer.tar"
            members[name] = layer
            new_layers.append(name)
        manifest.append(
            {
                "Config": f"{image_id}.json",
                "RepoTags": [image.ref],
                "Layers": parent_layers + new_layers,
            }
        )
        ids.append(f"sha256:{image_id}")
    members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), ids


def add_layers(
    load: Callable[[bytes], None], parent: dict[str, Any], images: Sequence[NewImage]
) -> list[str]:
    """Adds ``images`` (each ``parent`` plus its layers) with ``load`` (a docker load); ids."""
    archive, ids = load_archive(parent, images)
    load(archive)
    return ids
