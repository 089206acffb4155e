"""Pushing job images to a registry, pinned by digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nemo_run_k8s.errors import ImageBuildError

if TYPE_CHECKING:
    from nemo_run_k8s.image.builder import JobImage


def push_image(image: JobImage | str, repo: str, *, quiet: bool | None = None) -> str:
    """Pushes a job image to ``repo`` and returns it pinned by digest: ``repo@sha256:...``.

    Uses the docker credentials of this user (``docker login``). Registry
    errors (auth, unknown host, denied) become :class:`ImageBuildError` saying
    what to do.
    """
    import docker.errors

    from nemo_run_k8s import progress
    from nemo_run_k8s.image.builder import JobImage, docker_client

    client = docker_client()
    ref = image.ref if isinstance(image, JobImage) else image
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    with progress.reporter(quiet).push(repo, tag) as shown:
        try:
            client.images.get(ref).tag(repo, tag)
            stream = client.api.push(repo, tag=tag, stream=True, decode=True)
            digest = None
            for chunk in stream:
                if "error" in chunk or "errorDetail" in chunk:
                    raise ImageBuildError(_push_error(repo, chunk.get("error", str(chunk))))
                digest = chunk.get("aux", {}).get("Digest", digest)
                shown.feed(chunk)
        except docker.errors.APIError as err:
            raise ImageBuildError(_push_error(repo, str(err.explanation or err))) from err
        if digest is None:
            raise ImageBuildError(f"pushing {repo}:{tag} reported no digest; check the registry")
        shown.done(f"{repo}@{digest}")
    return f"{repo}@{digest}"


def _push_error(repo: str, message: str) -> str:
    host = repo.split("/", 1)[0] if "/" in repo else "docker.io"
    lowered = message.lower()
    if (
        "unauthorized" in lowered
        or "authentication required" in lowered
        or "no basic auth" in lowered
    ):
        return (
            f"the registry {host} refused the push of {repo}: not logged in or wrong "
            f"credentials. Run `docker login {host}` and submit again. ({message.strip()})"
        )
    if "denied" in lowered:
        return (
            f"the registry {host} denied the push of {repo}: your account may not write to "
            f"this repository. ({message.strip()})"
        )
    if "no such host" in lowered or "connection refused" in lowered or "dial tcp" in lowered:
        return (
            f"cannot reach the registry {host} to push {repo}: check the image_repo host "
            f"name and that the registry is up. ({message.strip()})"
        )
    return f"pushing {repo} failed: {message.strip()}"
