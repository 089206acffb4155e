"""Job images: content-addressed builds and a preflight inside the image.

The recipe is ``resources/job.Dockerfile`` (the repository's top-level
``Dockerfile`` links to it). It is built in two parts:

- the *environment* image (base, runtime wheels, nemo_run_k8s, user code),
  tagged ``nemo-run-k8s/env:<hash>`` where the hash covers every input: the
  base image *id*, the wheel files, the code directory's files and the recipe;
- the *job* image, ``FROM`` the environment plus one layer holding the
  bundles, tagged ``nemo-run-k8s/job:<hash of env tag + bundle hashes>``.

Same inputs, same tags: nothing is built. A config change adds only the job
layer, a few kilobytes handed to the engine as one ``docker load`` (see
:mod:`nemo_run_k8s.image.layers`), so it costs the same whatever the size of
the code directory. A code change where files were only edited or added adds a
layer of just those files on top of the previous environment image (an
*overlay*), in the same single load as the job layer; a deleted file, a new
base or wheel, or a chain of ``MAX_OVERLAYS`` overlays builds the environment
afresh. Either way the tag names the content, so the same code gives the same
tag. File hashes of the code directory are cached by (size, mtime, inode), so
an unchanged directory is only stat-ed.

Right after a build a *preflight* runs one short container from the new image:
it loads every bundle, imports every target it references and compares the
Python minor version with this client's, and reports the code files that
import read. Its verdict is cached per environment (base, wheels), task kind,
set of imported modules and list of code file names, and holds while the files
it read are unchanged: neither a config change nor an edit to code the job
does not import runs it again; an edit to a module it imports does. Secrets
never reach this module: they are passed to containers and pods at run time only.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemo_run_k8s import records
from nemo_run_k8s.bundle.files import Bundle, python_mismatch
from nemo_run_k8s.errors import ImageBuildError, InvalidOptionError
from nemo_run_k8s.image import engine, wheels
from nemo_run_k8s.image.context import (
    FileHashCache,
    atomic_write,
    code_files,
    digest,
    tar_context,
    unique_bundles,
)
from nemo_run_k8s.image.layers import NewImage, add_layers
from nemo_run_k8s.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from nemo_run_k8s.paths import IMAGE_BUNDLE_ROOT, IMAGE_CODE_ROOT
from nemo_run_k8s.spec import DEFAULT_BASE_IMAGE, ImageSpec

RECIPE = Path(__file__).resolve().parents[1] / "resources" / "job.Dockerfile"
BUNDLE_LAYER_MARKER = "# --- bundle layer ---"
ENV_REPO = "nemo-run-k8s/env"
JOB_REPO = "nemo-run-k8s/job"
BUNDLES_LABEL = "nemo-run-k8s.io/bundles"
_PREFLIGHT_VERSION = 3  # 3: verdicts hold the code files the check read
#: Overlay code layers stacked on one full environment build before the next full build.
MAX_OVERLAYS = 8


@dataclasses.dataclass(frozen=True)
class JobImage:
    """A built job image.

    Attributes:
      ref: the local tag, ``nemo-run-k8s/job:<content hash>``.
      id: the image id (``sha256:...``).
      built: False when an image with the same inputs already existed.
      env_ref: the environment image it was built on.
      bundles: sha256 of each bundle inside (at ``/opt/nemo_run_k8s/bundles/<sha>``).
      seconds: wall time spent getting it.
    """

    ref: str
    id: str
    built: bool
    env_ref: str
    bundles: tuple[str, ...]
    seconds: float = 0.0


def build_image(
    task_or_bundles: Any, executor: Any = None, *, quiet: bool | None = None
) -> JobImage:
    """Builds (or finds) the job image for a task or for bundles.

    ``task_or_bundles`` is a task (run.Config / run.Partial / run.Script), a
    :class:`~nemo_run_k8s.bundle.files.Bundle`, or a list of bundles (an experiment:
    one image for all). ``executor`` supplies ``base_image`` and ``code_dir``.
    """
    if isinstance(task_or_bundles, Bundle):
        bundles: list[Bundle] = [task_or_bundles]
    elif isinstance(task_or_bundles, (list, tuple)):
        bundles = list(task_or_bundles)
    else:
        bundles = [_bundle_for(task_or_bundles, executor)]
    spec = executor.image_spec() if executor is not None else None
    if spec is None:
        if executor is not None:
            raise InvalidOptionError(
                f"the {executor.kind} executor runs jobs without an image; "
                "use run.DockerExecutor or run.KubernetesExecutor to build one"
            )
        spec = ImageSpec(DEFAULT_BASE_IMAGE)
    return ImageBuilder(quiet=quiet).build(bundles, spec)


def _bundle_for(task: Any, executor: Any) -> Bundle:
    from nemo_run_k8s.bundle.files import make_bundle

    resources = executor.resources() if executor is not None else None
    code_dirs = executor.code_dirs() if executor is not None else ()
    dest = records.home() / "bundles" / f"tmp-{os.getpid()}-{time.monotonic_ns()}"
    bundle = make_bundle(task, dest, resources, code_dirs)
    final = dest.with_name(bundle.sha256)
    if final.exists():
        import shutil

        shutil.rmtree(dest)
    else:
        os.rename(dest, final)
    return Bundle.open(final)


@dataclasses.dataclass(frozen=True)
class _Environment:
    """An environment image: its tag, the key of everything but the code, the code's hashes.

    ``image`` is its inspect when it exists. When it is still to be made as an
    overlay, ``overlay`` holds the image it goes on (an inspect) and the layer
    of changed files; :meth:`ImageBuilder.build` adds both in one load.
    """

    ref: str
    base_key: str
    code: dict[str, str]
    image: dict[str, Any] | None = None
    overlay: tuple[dict[str, Any], bytes] | None = None

    @property
    def names_key(self) -> str:
        """A hash of the code directory's file names (what an import can resolve to)."""
        return digest(sorted(self.code))


class ImageBuilder:
    """Builds job images with the Docker engine (docker SDK, classic builder).

    Lookups and added layers go through :mod:`nemo_run_k8s.image.engine` (no SDK
    import) where the engine is on a Unix socket; the SDK client is made on
    first need (builds, pulls, the in-image check), or given as ``client``.
    """

    def __init__(self, client: Any = None, quiet: bool | None = None):
        from nemo_run_k8s import progress

        self._client = client
        self.engine = engine.from_env() if client is None else None
        if self.engine is not None:
            try:
                self.engine.ping()
            except (OSError, engine.EngineError) as err:
                raise engine_unreachable(err) from err
        elif client is None:
            self._client = docker_client()
        self.progress = progress.reporter(quiet)  # see nemo_run_k8s/progress.py
        self.quiet = self.progress.mode != "plain"  # pip's own output: plain lines only
        self.cache = records.home() / "cache"

    @property
    def client(self) -> Any:
        """The docker SDK client (made on first use)."""
        if self._client is None:
            self._client = docker_client()
        return self._client

    # ------------------------------------------------------------------ public

    def build(self, bundles: Sequence[Bundle], spec: ImageSpec) -> JobImage:
        start = time.perf_counter()
        if not bundles:
            raise ImageBuildError("a job image needs at least one bundle")
        base = self.base_info(spec.base_image)
        _check_python(spec.base_image, base["python"])
        env = self.environment(spec, base)
        env_ref = env.ref
        shas = tuple(sorted({b.sha256 for b in bundles}))
        tag = digest([env_ref, *shas])[:32]
        ref = f"{JOB_REPO}:{tag}"
        existing = self.find(ref) if env.image is not None else None
        built = existing is None
        if existing is not None:
            image_id = str(existing["Id"])
        else:
            image_id = self._add_bundle_layer(env, unique_bundles(bundles), ref)
        for bundle in bundles:
            self.check_image(ref, image_id, env, bundle)
        return JobImage(ref, image_id, built, env_ref, shas, time.perf_counter() - start)

    def environment(self, spec: ImageSpec, base: dict[str, Any]) -> _Environment:
        """The environment image for ``spec``: found by content tag, or made.

        Made as an overlay of the previous environment image of the same base
        key when the code only gained or changed files (returned still to be
        added: see :class:`_Environment`), else built from the recipe.
        """
        base_key, deps, own = self._base_key(spec, base)
        found = list(code_files(Path(spec.code_dir))) if spec.code_dir else []
        hashed = self._hashed(spec.code_dir, found)
        code = {rel: sha for rel, _, sha in hashed}
        key = digest([base_key, *(f"{rel}:{sha}" for rel, sha in code.items())])
        ref = f"{ENV_REPO}:{key[:32]}"
        image = self.find(ref)
        if image is not None:
            return _Environment(ref, base_key, code, image)
        chain = self.cache / "env-chain" / f"{base_key[:32]}.json"
        overlay = self._overlay(chain, code, {rel: path for rel, path, _ in hashed})
        if overlay is not None:
            parent, layer, depth = overlay
            atomic_write(chain, json.dumps({"ref": ref, "code": code, "depth": depth}))
            return _Environment(ref, base_key, code, overlay=(parent, layer))
        files = {"Dockerfile": env_recipe().encode()}
        members = [(f"wheels/deps/{p.name}", p) for p in deps]
        members.append((f"wheels/pkg/{own.name}", own))
        members += [(f"code/{rel}", path) for rel, path, _ in hashed]
        context = tar_context(files, members, empty_dirs=["code"])
        self._docker_build(
            context,
            ref,
            buildargs={"BASE_IMAGE": spec.base_image, "NEMO_RUN_K8S_PYTHON": base["python"]},
        )
        atomic_write(chain, json.dumps({"ref": ref, "code": code, "depth": 0}))
        return _Environment(ref, base_key, code, self.find(ref))

    def _base_key(self, spec: ImageSpec, base: dict[str, Any]) -> tuple[str, list[Path], Path]:
        """The key of everything in the environment but the code; the wheels it names."""
        deps = wheels.download_dependency_wheels(
            self.cache / "wheels" / f"py{base['python_minor']}-{base['platform']}",
            base["python_minor"],
            base["platform"],
            quiet=self.quiet,
        )
        own = wheels.build_own_wheel(self.cache / "own-wheel")
        hashes = FileHashCache(self.cache / "file-hashes.json")
        wheel_shas = hashes.hash_all((p.name, p) for p in [*deps, own])
        parts = [env_recipe(), base["id"], *(f"{rel}:{sha}" for rel, _, sha in wheel_shas)]
        return digest(parts), deps, own

    def _overlay(
        self, chain: Path, code: dict[str, str], paths: dict[str, Path]
    ) -> tuple[dict[str, Any], bytes, int] | None:
        """(previous environment's inspect, layer of the changed files, chain depth), or None.

        None (build afresh) when there is no previous environment image for this
        base key, a file was deleted or renamed (a layer can only add), or the
        chain is ``MAX_OVERLAYS`` long.
        """
        try:
            previous = json.loads(chain.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        old: dict[str, str] = previous.get("code", {})
        if previous.get("depth", MAX_OVERLAYS) >= MAX_OVERLAYS or not set(old) <= set(code):
            return None
        parent = self.find(previous["ref"])
        if parent is None:
            return None
        root = IMAGE_CODE_ROOT.lstrip("/")
        changed = [
            (f"{root}/{rel}", paths[rel]) for rel, sha in code.items() if old.get(rel) != sha
        ]
        layer = tar_context({}, changed).getvalue()
        return parent, layer, int(previous["depth"]) + 1

    def _add_bundle_layer(self, env: _Environment, bundles: Sequence[Bundle], ref: str) -> str:
        """The recipe's last step (``COPY bundles/ /opt/nemo_run_k8s/bundles/``), done directly.

        The layer is handed to the engine as one ``docker load`` (see
        :mod:`nemo_run_k8s.image.layers`): the same single layer a build of that
        COPY line makes, without a build or a container. An environment still
        to be made as an overlay is added by the same load. Returns the image id.
        """
        root = IMAGE_BUNDLE_ROOT.lstrip("/")
        members = [(f"{root}/{b.sha256}", b.path) for b in bundles]
        bundle_layer = tar_context({}, members, empty_dirs=[root]).getvalue()
        if env.overlay is not None:
            parent, code_layer = env.overlay
            labels = dict(parent["Config"].get("Labels") or {})
            images = [NewImage(env.ref, (code_layer,), labels)]
            layers: tuple[bytes, ...] = (code_layer, bundle_layer)
        else:
            parent = env.image or {}
            labels = dict(parent["Config"].get("Labels") or {})
            images, layers = [], (bundle_layer,)
        labels[BUNDLES_LABEL] = ",".join(b.sha256 for b in bundles)
        images.append(NewImage(ref, layers, labels))
        ids = add_layers(self._load, parent, images)
        sizes = " + ".join(f"{len(layer) / 1e3:.1f} kB" for layer in layers)
        self._say(
            f"built {ref}: {'code and bundle layers' if env.overlay else 'bundle layer'} of {sizes}"
        )
        return ids[-1]

    def base_info(self, base_image: str) -> dict[str, Any]:
        """Image id, Python version and platform of a base image (cached per image id)."""
        image = self.find(base_image) or self._pull(base_image)
        image_id = str(image["Id"])
        cache = self.cache / "base-info" / f"{image_id.replace(':', '-')}.json"
        try:
            return dict(json.loads(cache.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        probe = (
            "import json, sys, sysconfig; print(json.dumps({'python': '%d.%d.%d' % "
            "sys.version_info[:3], 'platform': sysconfig.get_platform()}))"
        )
        output = self._run_once(image_id, ["python3", "-c", probe], what=f"base image {base_image}")
        info = json.loads(output.strip().splitlines()[-1])
        info["id"] = image_id
        info["python_minor"] = ".".join(info["python"].split(".")[:2])
        atomic_write(cache, json.dumps(info))
        return info

    def check_image(self, ref: str, image_id: str, env: _Environment, bundle: Bundle) -> None:
        """Checks inside the image that the bundle loads and its targets import.

        The verdict depends on the environment (base, wheels), the Python version,
        the task kind, whether a node runs several processes (torchrun), the
        modules imported by reference, the code directory's file names (where an
        import can resolve) and the content of the code files the import read
        (the check reports them). It is cached on exactly that: neither a config
        change nor an edit to code the job does not import runs it again; an edit
        to a file it imported does.
        """
        manifest = bundle.manifest
        imports = sorted(manifest.get("imports", {}))
        multi_process = int(manifest.get("resources", {}).get("nproc_per_node") or 1) > 1
        key = digest(
            [
                str(_PREFLIGHT_VERSION),
                env.base_key,
                env.names_key,
                manifest["python"],
                manifest["task_kind"],
                f"torchrun={multi_process}",
                *imports,
            ]
        )
        marker = self.cache / "preflight" / key
        try:
            read = json.loads(marker.read_text())["read"]
            if all(env.code.get(rel) == sha for rel, sha in read.items()):
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError, AttributeError):
            pass
        path = bundle.image_path
        self._say(f"checking that the job loads in {ref} (preflight)")
        output = self._run_once(
            image_id,
            ["python3", "-m", "nemo_run_k8s.runtime.import_check", path],
            what=f"preflight of {ref}",
            allow_failure=True,
        )
        try:
            verdict = json.loads(output.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise ImageBuildError(
                f"preflight in {ref} did not report (is nemo_run_k8s importable there?):\n"
                + output[-2000:]
            ) from None
        if not verdict["ok"]:
            problems = "\n  ".join(verdict["problems"])
            raise ImageBuildError(
                f"the job cannot start in image {ref}; nothing was submitted:\n  {problems}"
            )
        files = verdict.get("read")
        if isinstance(files, list):  # an image's check that does not report reads: never reused
            read = {rel: env.code.get(rel) for rel in files}
            atomic_write(marker, json.dumps({**verdict, "read": read}))

    # ------------------------------------------------------------------ docker plumbing

    def find(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect, or None when the engine does not have it."""
        if self.engine is not None:
            try:
                return self.engine.inspect_image(ref)
            except (OSError, engine.EngineError) as err:
                raise ImageBuildError(f"cannot inspect image {ref}: {err}") from err
        import docker.errors

        try:
            return dict(self.client.api.inspect_image(ref))
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as err:
            raise ImageBuildError(f"cannot inspect image {ref}: {err.explanation}") from err

    def _load(self, archive: bytes) -> None:
        """``docker load`` of an in-memory tar (see :mod:`nemo_run_k8s.image.layers`)."""
        if self.engine is not None:
            try:
                self.engine.load(archive)
            except (OSError, engine.EngineError) as err:
                raise ImageBuildError(f"adding a layer failed: {err}") from err
            return
        import docker.errors

        try:
            for chunk in self.client.api.load_image(archive, quiet=True):
                if isinstance(chunk, dict) and ("error" in chunk or "errorDetail" in chunk):
                    detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                    raise ImageBuildError(f"adding a layer failed: {detail}")
        except docker.errors.APIError as err:
            raise ImageBuildError(f"adding a layer failed: {err.explanation}") from err

    def _pull(self, ref: str) -> dict[str, Any]:
        import docker.errors
        from docker.utils import parse_repository_tag

        repo, tag = parse_repository_tag(ref)
        with self.progress.pull(repo, tag or "latest") as shown:
            try:
                for chunk in self.client.api.pull(repo, tag, stream=True, decode=True):
                    if "error" in chunk or "errorDetail" in chunk:
                        raise base_image_missing(ref, chunk.get("error", str(chunk)))
                    shown.feed(chunk)
                image = self.find(ref)
            except docker.errors.APIError as err:
                raise base_image_missing(ref, err.explanation) from err
            if image is None:
                raise base_image_missing(ref, "the pull ended without the image")
            shown.done(ref)
        return image

    def _run_once(
        self, image: str, command: list[str], what: str, allow_failure: bool = False
    ) -> str:
        import docker.errors

        try:
            container = self.client.containers.create(
                image,
                entrypoint=command,
                network_disabled=True,
                labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            )
        except docker.errors.APIError as err:
            raise ImageBuildError(f"{what}: cannot create a container: {err.explanation}") from err
        try:
            container.start()
            status = container.wait(timeout=120)
            output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        except docker.errors.APIError as err:
            raise ImageBuildError(f"{what}: {err.explanation}") from err
        finally:
            container.remove(force=True)
        if status.get("StatusCode") != 0 and not allow_failure:
            raise ImageBuildError(
                f"{what} failed (exit {status.get('StatusCode')}):\n{output[-2000:]}"
            )
        return str(output)

    def _docker_build(
        self,
        context: io.BytesIO,
        tag: str,
        buildargs: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Runs one classic-builder build, showing its progress; failures name the step."""
        step, step_output = "", list[str]()
        with self.progress.build(tag, len(context.getbuffer())) as shown:
            stream = self.client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error", "")
                    # The classic builder colours a step's stderr: keep the text, drop the codes.
                    output = re.sub(r"\x1b\[[0-9;]*m", "", "".join(step_output[-40:])).rstrip()
                    raise ImageBuildError(
                        f"building {tag} failed at {step.strip() or 'the first step'}\n"
                        f"{detail.strip()}\n--- step output ---\n{output}"
                    )
                text = chunk.get("stream", "")
                if text.startswith("Step "):
                    step, step_output = text, []
                elif text:
                    step_output.append(text)
                shown.feed(text)
            shown.done()

    def _hashed(
        self, code_dir: str | None, files: list[tuple[str, Path]]
    ) -> list[tuple[str, Path, str]]:
        if not code_dir:
            return []
        return FileHashCache(self.cache / "file-hashes.json").hash_all(files)

    def _say(self, message: str) -> None:
        self.progress.note(message)


_CLIENTS: dict[tuple[str, ...], Any] = {}


def docker_client() -> Any:
    """A docker SDK client, with a clear error when no engine answers.

    One client per process and engine address (making one reads the SDK's
    config and negotiates the API version); each call still pings.
    """
    try:
        import docker
    except ImportError:
        raise ImageBuildError(
            "the docker package is needed for Docker and Kubernetes jobs: "
            "pip install 'nemo_run_k8s[docker]'"
        ) from None
    key = tuple(
        os.environ.get(name, "")
        for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
    )
    try:
        client = _CLIENTS.get(key) or docker.from_env(timeout=300)
        client.ping()
    except Exception as err:  # DockerException, or the transport's error on a reused client
        _CLIENTS.pop(key, None)
        raise engine_unreachable(err) from err
    _CLIENTS[key] = client
    return client


def engine_unreachable(err: Exception) -> ImageBuildError:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return ImageBuildError(
        f"cannot reach the Docker engine at {host} ({err}). Start dockerd (or Docker "
        "Desktop), or use run.LocalExecutor() to run without Docker."
    )


def env_recipe() -> str:
    text = RECIPE.read_text()
    return text.split(BUNDLE_LAYER_MARKER)[0]


def job_layer_recipe(env_ref: str) -> str:
    bundle_part = RECIPE.read_text().split(BUNDLE_LAYER_MARKER)[1]
    return f"FROM {env_ref}\n" + "".join(
        line + "\n" for line in bundle_part.splitlines() if line and not line.startswith("#")
    )


def base_image_missing(ref: str, explanation: str) -> ImageBuildError:
    """The error for a base image that is neither on the engine nor pullable."""
    return ImageBuildError(
        f"base image {ref!r} is not present locally and cannot be pulled ({explanation}). "
        "Build or load it first (images/build.sh cpu builds nemo-run-k8s/cpu:local), or pass "
        "base_image= an image you have (`docker images`)."
    )


def _check_python(base_image: str, base_python: str) -> None:
    here = "{}.{}.{}".format(*sys.version_info[:3])
    if here.split(".")[:2] != base_python.split(".")[:2]:
        raise python_mismatch(here, base_python, f"base image {base_image}")
