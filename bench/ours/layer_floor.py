"""The floor under a config-only change: adding a few-KB layer to an image the engine has.

Two ways this engine offers, timed with the docker SDK and nothing of ours:

``load``    one ``docker load`` of a tar holding the new image's config, a
            manifest naming the existing layers and only the new layer (what
            nemo_run_k8s does; see nemo_run_k8s/image/layers.py, not used here);
``commit``  create a container of the image, put the files in, commit it,
            remove the container.

The layer holds a 4 KB file of random bytes (a new one each sample). The tar
is made before the clock starts; what is timed is the engine's work.

Usage: python layer_floor.py IMAGE N {load,commit}
Prints one JSON line: {"samples": [...], "images": [...]}.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time

import docker

REPO = "nemo-run-k8s-bench/layer-floor"


def layer_tar(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("opt/layer-floor/data.bin")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load_archive(parent: dict, layer: bytes, ref: str) -> bytes:  # type: ignore[type-arg]
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": parent["Architecture"],
            "os": parent["Os"],
            "config": parent["Config"],
            "rootfs": {"type": "layers", "diff_ids": [*parent["RootFS"]["Layers"], diff_id]},
            "history": [],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layers = [f"{d[7:]}/layer.tar" for d in [*parent["RootFS"]["Layers"], diff_id]]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": layers}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((config_name, config), (layers[-1], layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> None:
    image, n, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    api = docker.from_env().api
    parent = api.inspect_image(image)
    samples, refs = [], set()
    for i in range(n + 1):  # the first is not counted
        layer = layer_tar(os.urandom(4096))
        ref = f"{REPO}:{how}-{os.getpid()}-{i}"
        if how == "load":
            archive = load_archive(parent, layer, ref)
            start = time.perf_counter()
            for _ in api.load_image(archive, quiet=True):
                pass
        else:
            start = time.perf_counter()
            container = api.create_container(image)["Id"]
            api.put_archive(container, "/", layer)
            api.commit(container, repository=REPO, tag=ref.rsplit(":", 1)[1])
            api.remove_container(container, force=True)
        elapsed = time.perf_counter() - start
        refs.add(ref)
        if i:
            samples.append(elapsed)
    print(json.dumps({"samples": samples, "images": sorted(refs)}))


if __name__ == "__main__":
    main()
