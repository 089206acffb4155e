"""Job images on the real engine: build, reuse, bundle-only rebuilds, preflight, secrets, push."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import nemo_run_k8s as run
from nemo_run_k8s.bundle.files import make_bundle
from nemo_run_k8s.errors import ImageBuildError
from nemo_run_k8s.image.builder import ImageBuilder
from nemo_run_k8s.image.push import push_image
from nemo_run_k8s.records import home
from nemo_run_k8s.spec import ImageSpec, JobState
from tests.docker.engine import build_test_base, leftovers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]
REGISTRY = "127.0.0.1:5000"


def scale(x: int, factor: int = 2) -> int:
    return x * factor


def token_digest() -> dict[str, str]:
    token = os.environ["API_TOKEN"]
    return {"sha256": hashlib.sha256(token.encode()).hexdigest(), "plain": os.environ["PLAIN"]}


def layers(client: Any, ref: str) -> list[str]:
    return list(client.api.inspect_image(ref)["RootFS"]["Layers"])


def test_job_image_built_on_the_local_base_runs_the_job(
    base_image: str, docker_client: Any, made_images: Any
) -> None:
    executor = run.DockerExecutor(base_image=base_image)
    image = run.build_image(run.Partial(scale, x=21), executor)
    made_images.add(image.ref, image.env_ref)
    assert image.ref.startswith("nemo-run-k8s/job:") and image.env_ref.startswith(
        "nemo-run-k8s/env:"
    )
    labels = docker_client.images.get(image.ref).labels
    assert labels["nemo-run-k8s.io/bundles"] == image.bundles[0]
    job = run.run(run.Partial(scale, x=21), executor)  # the same inputs: the same image
    assert job.result() == 42
    assert job.record.handle["image"] == image.ref
    assert leftovers(docker_client, job.id) == []


def test_config_change_rebuilds_only_the_bundle_layer(
    base_image: str, docker_client: Any, made_images: Any
) -> None:
    executor = run.DockerExecutor(base_image=base_image)
    first = run.build_image(run.Partial(scale, x=1, factor=3), executor)
    again = run.build_image(run.Partial(scale, x=1, factor=3), executor)
    changed = run.build_image(run.Partial(scale, x=1, factor=4), executor)
    made_images.add(first.ref, changed.ref, first.env_ref)
    assert not again.built and again.id == first.id  # unchanged inputs: nothing built
    assert changed.built and changed.env_ref == first.env_ref
    old, new = layers(docker_client, first.ref), layers(docker_client, changed.ref)
    assert len(old) == len(new)
    assert old[:-1] == new[:-1]  # every layer shared but the bundle layer
    assert old[-1] != new[-1]


def test_preflight_catches_a_module_missing_from_the_image(
    base_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_images: Any
) -> None:
    # A module under code_dir travels by reference: the job imports it from the image.
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    module = f"nrk_user_code_{secrets.token_hex(3)}"
    (code_dir / f"{module}.py").write_text("def train(steps=1):\n    return steps * 10\n")
    monkeypatch.syspath_prepend(str(code_dir))
    train = __import__(module).train
    bundle = make_bundle(
        run.Partial(train, steps=4), tmp_path / "bundle", code_dirs=(str(code_dir),)
    )
    assert module in bundle.manifest["imports"]
    builder = ImageBuilder()
    with pytest.raises(ImageBuildError) as caught:  # an image built without that code_dir
        builder.build([bundle], ImageSpec(base_image))
    message = str(caught.value)
    made_images.add(*re.findall(r"nemo-run-k8s/job:[0-9a-f]+", message))
    assert "the job cannot start in image nemo-run-k8s/job:" in message
    assert f"{module}.train: cannot import module {module!r} in the image" in message
    assert "code_dir=" in message
    with_code = builder.build([bundle], ImageSpec(base_image, code_dir=str(code_dir)))
    made_images.add(with_code.ref, with_code.env_ref)  # with it, the preflight passes


def code_in_image(client: Any, ref: str, path: str) -> str:
    output = client.containers.run(ref, entrypoint=["cat", path], remove=True)
    return str(output.decode())


def test_a_one_file_change_adds_one_layer_and_still_checks_what_the_job_imports(
    base_image: str,
    docker_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    made_images: Any,
) -> None:
    package = f"nrk_edit_{secrets.token_hex(3)}"
    code_dir = tmp_path / "code"
    (code_dir / package).mkdir(parents=True)
    (code_dir / package / "__init__.py").write_text("")
    (code_dir / package / "train.py").write_text(
        "from . import model\n\ndef train(steps=1):\n    return model.SCALE * steps\n"
    )
    (code_dir / package / "model.py").write_text("SCALE = 10\n")
    (code_dir / package / "notes.py").write_text("NOTE = 'not imported by the job'\n")
    monkeypatch.syspath_prepend(str(code_dir))
    train = __import__(f"{package}.train", fromlist=["train"]).train
    executor = run.DockerExecutor(base_image=base_image, code_dir=str(code_dir))
    checks: list[str] = []
    run_once = ImageBuilder._run_once

    def counting(self: Any, image: str, command: list[str], *args: Any, **kwargs: Any) -> str:
        if "nemo_run_k8s.runtime.import_check" in command:
            checks.append(image)
        return run_once(self, image, command, *args, **kwargs)

    monkeypatch.setattr(ImageBuilder, "_run_once", counting)
    first = run.build_image(run.Partial(train, steps=1), executor)
    made_images.add(first.ref, first.env_ref)
    assert len(checks) == 1

    # An edit to a file the job does not import: one layer of that file, no new check.
    (code_dir / package / "notes.py").write_text("NOTE = 'edited'\n")
    edited = run.build_image(run.Partial(train, steps=2), executor)
    made_images.add(edited.ref, edited.env_ref)
    old, new = layers(docker_client, first.env_ref), layers(docker_client, edited.env_ref)
    assert new[:-1] == old and len(new) == len(old) + 1
    assert code_in_image(docker_client, edited.ref, f"/workspace/{package}/notes.py") == (
        "NOTE = 'edited'\n"
    )
    assert len(checks) == 1

    # An edit to a module the job imports: checked again, and a broken import is caught.
    (code_dir / package / "model.py").write_text("import nrk_no_such_module\nSCALE = 1\n")
    with pytest.raises(ImageBuildError) as caught:
        run.build_image(run.Partial(train, steps=3), executor)
    made_images.add(*re.findall(r"nemo-run-k8s/job:[0-9a-f]+", str(caught.value)))
    assert len(checks) == 2
    assert "No module named 'nrk_no_such_module'" in str(caught.value)
    assert "nothing was submitted" in str(caught.value)
    (code_dir / package / "model.py").write_text("SCALE = 100\n")
    fixed = run.build_image(run.Partial(train, steps=3), executor)
    made_images.add(fixed.ref, fixed.env_ref)
    assert len(checks) == 3
    assert run.run(run.Partial(train, steps=3), executor).result() == 300

    # A deleted file: the environment is built afresh (a layer cannot remove a file).
    (code_dir / package / "notes.py").unlink()
    rebuilt = run.build_image(run.Partial(train, steps=4), executor)
    made_images.add(rebuilt.ref, rebuilt.env_ref)
    assert len(layers(docker_client, rebuilt.env_ref)) == len(old)
    assert run.run(run.Partial(train, steps=4), executor).result() == 400


@pytest.fixture(scope="module")
def pypy_base(docker_client: Any, base_image: str, tmp_path_factory: Any, made_images: Any) -> str:
    """The local base with Debian's PyPy (a real Python 3.9) as its python3.

    The .deb files are fetched on the host with `apt-get download` (containers reach no
    mirror) and unpacked into the image; `python3` then reports 3.9.
    """
    debs = tmp_path_factory.mktemp("pypy-debs")
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is needed to fetch Debian's pypy3")
    proc = subprocess.run(
        ["apt-get", "download", "pypy3", "pypy3-lib", "libgdbm6"],
        cwd=debs,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        message = f"apt-get download pypy3 failed: {proc.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    dockerfile = (
        f"FROM {base_image}\nCOPY debs/ /tmp/debs/\n"
        'RUN for deb in /tmp/debs/*.deb; do dpkg-deb -x "$deb" /; done && rm -rf /tmp/debs '
        "&& ln -sf /usr/bin/pypy3 /usr/local/bin/python3\n"
    )
    files = {f"debs/{p.name}": p for p in sorted(debs.glob("*.deb"))}
    ref = build_test_base(docker_client, "pypy-base", dockerfile, files)
    made_images.add(ref)
    return ref


def test_a_python_minor_mismatch_is_refused_before_building(
    pypy_base: str, docker_client: Any
) -> None:
    here = "{}.{}".format(*sys.version_info[:2])
    with pytest.raises(run.BundleError) as caught:
        run.build_image(run.Partial(scale, x=1), run.DockerExecutor(base_image=pypy_base))
    message = str(caught.value)
    assert f"pickled with Python {sys.version.split()[0]}" in message
    assert f"base image {pypy_base} runs Python 3.9." in message
    assert f"Use a base image with Python {here}" in message
    python = docker_client.api.inspect_image(pypy_base)["Id"]  # no environment image was made
    assert not docker_client.images.list(filters={"label": "nemo-run-k8s.io/python=3.9.16"})
    assert python


def test_a_failing_recipe_step_shows_the_step_and_its_output(
    base_image: str, docker_client: Any, made_images: Any
) -> None:
    # A Debian base whose python3 lost its venv module: its pip refuses system installs
    # (PEP 668) and no venv can be made, so the recipe's first RUN stops and says what to do.
    dockerfile = f"FROM {base_image}\nRUN rm -rf /usr/lib/python3*/venv\n"
    broken = build_test_base(docker_client, "no-venv", dockerfile, {})
    made_images.add(broken)
    with pytest.raises(ImageBuildError) as caught:
        run.build_image(run.Partial(scale, x=1), run.DockerExecutor(base_image=broken))
    message = str(caught.value)
    assert "failed at Step " in message and ": RUN set -u;" in message
    assert "\nnemo_run_k8s: cannot install its runtime wheels into the base image's python3" in (
        message  # the step's own output
    )
    assert "(PEP 668: /usr/lib/python3.11/EXTERNALLY-MANAGED)" in message
    assert "/usr/bin/python3: No module named venv" in message  # why no venv could be made
    assert "apt-get install python3-venv" in message
    assert "python3 -m venv --system-site-packages /opt/venv; ENV PATH=/opt/venv/bin:$PATH" in (
        message
    )
    assert "\x1b[" not in message  # without the builder's colour codes
    assert "returned a non-zero code" in message


def test_no_secret_in_image_labels_history_bundle_plan_or_records(
    base_image: str, docker_client: Any, made_images: Any
) -> None:
    secret = f"nrk-secret-{secrets.token_hex(8)}"
    executor = run.DockerExecutor(
        num_nodes=2,
        base_image=base_image,
        env_vars={"PLAIN": "visible"},
        secret_env_vars={"API_TOKEN": secret},
    )
    task = run.Partial(token_digest)
    assert secret not in str(run.dryrun(task, executor))
    job = run.run(task, executor, name="secret-job")
    assert job.result() == {  # the job saw the secret, at run time
        "sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "plain": "visible",
    }
    handle = job.record.handle
    for ref in (handle["image"], handle["env_image"]):
        inspected = json.dumps(docker_client.api.inspect_image(ref))
        history = json.dumps(docker_client.api.history(ref))
        assert secret not in inspected and secret not in history
        assert "API_TOKEN" not in inspected  # not even the name is baked in
    for path in [*Path(handle["job_dir"]).rglob("*"), *home().glob("jobs.sqlite3*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert leftovers(docker_client, job.id) == []
    assert job.state() is JobState.SUCCEEDED


def registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_push_to_a_real_registry_pins_the_digest(
    base_image: str, docker_client: Any, made_images: Any
) -> None:
    if not registry_answers():
        message = f"no registry answers on {REGISTRY} (.ci/setup-registry.sh starts one)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    image = run.build_image(run.Partial(scale, x=5), run.DockerExecutor(base_image=base_image))
    repo = f"{REGISTRY}/nemo-run-k8s-test/docker-{secrets.token_hex(3)}"
    made_images.add(image.ref, image.env_ref)
    made_images.add_tag(f"{repo}:{image.ref.rsplit(':', 1)[1]}")
    pinned = push_image(image, repo)
    name, _, digest = pinned.partition("@")
    assert name == repo and digest.startswith("sha256:")
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo.split('/', 1)[1]}/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        method="HEAD",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Docker-Content-Digest"] == digest


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "host",
    ["nrk-no-such-host.invalid", f"127.0.0.1:{closed_port()}"],  # .invalid never resolves
    ids=["unknown-host", "connection-refused"],
)
def test_push_errors_say_which_registry_cannot_be_reached(
    host: str, base_image: str, made_images: Any
) -> None:
    image = run.build_image(run.Partial(scale, x=5), run.DockerExecutor(base_image=base_image))
    repo = f"{host}/nemo-run-k8s-test/unreachable"
    made_images.add(image.ref, image.env_ref)
    made_images.add_tag(f"{repo}:{image.ref.rsplit(':', 1)[1]}")
    with pytest.raises(ImageBuildError) as caught:
        push_image(image, repo)
    message = str(caught.value)
    assert f"cannot reach the registry {host} to push {repo}" in message
    assert "check the image_repo host name" in message
    assert ("no such host" in message) or ("connection refused" in message)
