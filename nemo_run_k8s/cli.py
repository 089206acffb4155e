"""The ``nemo-run-k8s`` command.

    nemo-run-k8s run examples/train.py:train_config optimizer.lr=1e-4 --executor docker
    nemo-run-k8s submit pkg.module:factory trainer.max_epochs=3 --executor k8s --image-repo ...
    nemo-run-k8s dryrun FACTORY [overrides] --executor k8s       # Dockerfile, tag, manifests
    nemo-run-k8s build FACTORY --executor docker                  # the image only
    nemo-run-k8s list | status ID | logs [-f] ID | cancel ID | show ID

FACTORY is ``package.module:function`` or ``path/to/file.py:function``; the
function returns a ``run.Config``, ``run.Partial`` or ``run.Script``. With
``--partial`` FACTORY names the function to run itself, configured by the
overrides. Overrides ``path.to.param=value`` are converted to the type the
target's signature declares. Jobs are found again from any terminal through
the job records. ``--output json|yaml`` prints machine-readable output.

Progress (building, pushing, waiting for a job to start) goes to stderr: live
on a terminal, plain lines otherwise, nothing with ``--quiet`` (see
``nemo_run_k8s/progress.py``; ``NEMO_RUN_K8S_PROGRESS=off`` silences it too).

This module imports only the standard library at start, so ``--help`` and
``list`` are quick; configs, docker and kubernetes load when a command needs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from collections.abc import Sequence
from typing import Any

EXECUTORS = ("local", "docker", "k8s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from nemo_run_k8s.errors import JobFailed, NemoRunError

    try:
        return int(args.func(args) or 0)
    except JobFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except NemoRunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug, or a fault nothing translated: still one line
        import os

        if os.environ.get("NEMO_RUN_K8S_DEBUG"):
            raise
        print(
            f"error: {type(err).__name__}: {err} (unexpected; run again with "
            "NEMO_RUN_K8S_DEBUG=1 for the traceback, and report it)",
            file=sys.stderr,
        )
        return 2


# --------------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemo-run-k8s",
        description="Run Fiddle-configured jobs locally, in Docker, or as Kubeflow PyTorchJobs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def task_command(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("factory", metavar="FACTORY", help="module:function or file.py:function")
        p.add_argument("overrides", nargs="*", metavar="PATH=VALUE", help="config overrides")
        p.add_argument("--partial", action="store_true", help="FACTORY is the function to run")
        p.add_argument("--name", help="job name (default: the target's name)")
        _executor_options(p)
        p.set_defaults(func=func)
        return p

    p = task_command("run", "submit a job, follow its logs, exit with its outcome", _cmd_run)
    _quiet_option(p, "no progress and no job logs; only the outcome")
    _output_option(p)
    p = task_command("submit", "submit a job and print its id", _cmd_submit)
    _quiet_option(p, "no progress on stderr")
    _output_option(p)
    task_command("dryrun", "print what would be built and launched; starts nothing", _cmd_dryrun)
    p = task_command("build", "build (or find) the job image only", _cmd_build)
    _quiet_option(p, "no progress on stderr")

    p = sub.add_parser("list", help="list recorded jobs", description="list recorded jobs")
    p.add_argument("--experiment")
    p.add_argument("--executor", choices=EXECUTORS)
    p.add_argument("--state", type=str.upper)
    p.add_argument("--limit", type=int, default=50)
    _output_option(p)
    p.set_defaults(func=_cmd_list)

    for name, help, func in (
        ("status", "show a job's state (read from its backend)", _cmd_status),
        ("cancel", "stop a job and remove what it holds", _cmd_cancel),
    ):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("job_id", metavar="ID")
        _output_option(p)
        p.set_defaults(func=func)

    p = sub.add_parser("logs", help="print a job's logs", description="print a job's logs")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument(
        "--replica", choices=("master", "worker"), help="only this kind of node (default: all)"
    )
    p.add_argument(
        "--index", type=int, help="only this one of --replica (from 0; Docker node i+1 = worker i)"
    )
    p.set_defaults(func=_cmd_logs)

    p = sub.add_parser("show", help="show a job's config", description="show a job's config")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--format", choices=("yaml", "flat", "manifest"), default="yaml")
    p.set_defaults(func=_cmd_show)
    return parser


def _quiet_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help=help)


def _output_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", choices=("table", "json", "yaml"), default="table")


def _executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor")
    g.add_argument("--executor", choices=EXECUTORS, default="local", help="default: local")
    g.add_argument("--num-nodes", type=int)
    g.add_argument("--nproc-per-node", type=int)
    g.add_argument("--gpus-per-node", type=int)
    g.add_argument("--base-image")
    g.add_argument("--code-dir")
    g.add_argument("--image-repo", help="registry repository to push job images to (k8s)")
    g.add_argument("--namespace", help="Kubernetes namespace (k8s)")
    g.add_argument("--kube-context", help="kubeconfig context (k8s)")
    g.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="any other executor option, e.g. --set shm_size=8Gi",
    )


# --------------------------------------------------------------------------- task commands


def _cmd_run(args: argparse.Namespace) -> int:
    from nemo_run_k8s.api import submit

    task, executor = _task_and_executor(args)
    _quiet(args)
    job = submit(task, executor, args.name)
    if args.output == "table" and not args.quiet:
        print(f"submitted {job.id} ({executor.kind}); Ctrl-C cancels it", file=sys.stderr)
    try:
        if not args.quiet:
            job.wait_started()  # shows why it is not running yet, if it is not
        if not args.quiet and args.output == "table":
            for line in job.logs(follow=True):
                print(line, flush=True)
        state = job.wait()
    except KeyboardInterrupt:
        print(f"\ncancelling {job.id} ...", file=sys.stderr)
        job.cancel()
        return 130
    error = job.exception()
    if args.output != "table":
        _print_data(_job_data(job, state, with_result=error is None), args.output)
    elif error is None:
        print(f"{job.id} {state.value}", file=sys.stderr)
        value = job.result()
        if value is not None:
            print(f"result: {value!r}")
    if error is not None:
        raise error
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from nemo_run_k8s.api import submit

    task, executor = _task_and_executor(args)
    _quiet(args)
    job = submit(task, executor, args.name)
    if args.output == "table":
        print(job.id)
    else:
        _print_data(_job_data(job, None), args.output)
    return 0


def _cmd_dryrun(args: argparse.Namespace) -> int:
    from nemo_run_k8s.api import dryrun

    task, executor = _task_and_executor(args)
    print(dryrun(task, executor, args.name), end="")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from nemo_run_k8s.image.builder import build_image

    task, executor = _task_and_executor(args)
    if executor.kind == "local":
        print(
            "error: the local executor uses no image; pass --executor docker|k8s", file=sys.stderr
        )
        return 2
    _quiet(args)
    image = build_image(task, executor)
    if not args.quiet:
        what = "built" if image.built else "found"
        print(f"{what} {image.ref} in {image.seconds:.2f}s", file=sys.stderr)
    print(image.ref)
    return 0


# --------------------------------------------------------------------------- job commands


def _cmd_list(args: argparse.Namespace) -> int:
    from nemo_run_k8s.job import Job
    from nemo_run_k8s.records import Records

    records = Records()
    rows = []
    for record in records.list(args.experiment, args.executor, None, args.limit):
        state = record.state
        if state in ("PENDING", "RUNNING"):  # refresh jobs that may have moved on
            try:
                state = Job(record, records).state().value
            except Exception:
                state = f"{state}?"
        if args.state and state != args.state:
            continue
        rows.append(
            {
                "id": record.id,
                "name": record.name,
                "executor": record.executor,
                "state": state,
                "created": _iso(record.created),
                "experiment": record.experiment or "",
            }
        )
    if args.output != "table":
        _print_data(rows, args.output)
    elif rows:
        from nemo_run_k8s.tables import format_table

        header = ("ID", "NAME", "EXECUTOR", "STATE", "CREATED", "EXPERIMENT")
        print(format_table([header, *[tuple(r.values()) for r in rows]]))
    else:
        print("no jobs recorded", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    _print_state(_job(args.job_id), args.output)
    return 0


def _print_state(job: Any, output: str) -> None:
    """A line for people (with the backend's reason, if any) and, on Kubernetes, one per
    replica (its pod's phase and why) and the latest warning events; or data for scripts."""
    described = job.describe()
    state = described.state
    if output != "table":
        data = {**_job_data(job, state), "reason": described.reason}
        data["replicas"] = [dataclasses.asdict(r) for r in described.replicas]
        data["warnings"] = list(described.warnings)
        _print_data(data, output)
        return
    reason = described.reason if state.value in ("FAILED", "PENDING") else ""
    headline = f"{job.id}  {job.name}  {job.executor}  {state.value}"
    if not described.replicas:
        print(headline + (f"  ({reason})" if reason else ""))
        return
    from nemo_run_k8s.tables import format_table

    print(headline)
    rows = [("  REPLICA", "POD", "PHASE", "RESTARTS", "DETAIL")]
    rows += [
        (f"  {r.label}", r.pod or "-", r.phase, str(r.restarts), r.detail)
        for r in described.replicas
    ]
    print(format_table(rows))
    for i, line in enumerate(reason.splitlines()):
        print(("  reason: " if i == 0 else "          ") + line)
    for warning in described.warnings:
        print(f"  warning: {warning}")


def _cmd_logs(args: argparse.Namespace) -> int:
    job = _job(args.job_id)
    try:
        for line in job.logs(follow=args.follow, replica=args.replica, index=args.index):
            print(line, flush=True)
    except BrokenPipeError:
        pass
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    job = _job(args.job_id)
    job.cancel()
    _print_state(job, args.output)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nemo_run_k8s.bundle.files import Bundle
    from nemo_run_k8s.paths import JobPaths

    job = _job(args.job_id)
    bundle_dir = JobPaths(Path(job.record.job_dir)).bundle
    manifest = Bundle.open(bundle_dir).manifest  # a damaged manifest is a BundleError
    if args.format == "manifest":
        print(json.dumps(manifest, indent=2))
    elif args.format == "yaml" and (bundle_dir / "config.yaml").exists():
        print((bundle_dir / "config.yaml").read_text(), end="")
    else:
        if args.format == "yaml" and manifest.get("config_yaml_omitted"):
            print(f"# no config.yaml: {manifest['config_yaml_omitted']}", file=sys.stderr)
        print(manifest.get("flattened_config", ""))
    return 0


def _quiet(args: argparse.Namespace) -> None:
    """``--quiet``: no progress on stderr for the rest of this command."""
    if args.quiet:
        from nemo_run_k8s.progress import set_progress

        set_progress("off")


def _job(job_id: str) -> Any:
    from nemo_run_k8s.job import Job

    return Job.from_id(job_id)


def _job_data(job: Any, state: Any, with_result: bool = False) -> dict[str, Any]:
    data = {
        "id": job.id,
        "name": job.name,
        "executor": job.executor,
        "state": state.value if state is not None else job.record.state,
        "created": _iso(job.record.created),
        "job_dir": job.record.job_dir,
    }
    if with_result:
        data["result"] = repr(job.result())
    return data


def _print_data(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


# --------------------------------------------------------------------------- factories


def _task_and_executor(args: argparse.Namespace) -> tuple[Any, Any]:
    from nemo_run_k8s.config.overrides import apply_overrides, load_factory

    task = load_factory(args.factory, partial=args.partial)
    apply_overrides(task, args.overrides)
    return task, _executor(args)


def _executor(args: argparse.Namespace) -> Any:
    from nemo_run_k8s.config.overrides import parse_typed
    from nemo_run_k8s.errors import InvalidOptionError
    from nemo_run_k8s.executors.base import backend_class

    cls = backend_class(args.executor)
    fields: dict[str, Any] = {}
    if dataclasses.is_dataclass(cls):
        fields = {f.name: f for f in dataclasses.fields(cls)}
    options: dict[str, Any] = {}
    for flag in (
        "num_nodes",
        "nproc_per_node",
        "gpus_per_node",
        "base_image",
        "code_dir",
        "image_repo",
        "namespace",
        "kube_context",
    ):
        value = getattr(args, flag)
        if value is not None:
            options[flag] = value
    if args.env:
        options["env_vars"] = dict(_split(item, "--env") for item in args.env)
    for item in args.set:
        key, raw = _split(item, "--set")
        field = fields.get(key)
        if field is None:
            raise InvalidOptionError(
                f"--set {key}: {cls.__name__} has no option {key!r}; options: "
                + ", ".join(sorted(fields))
            )
        options[key] = parse_typed(raw, typing.get_type_hints(cls).get(key), f"--set {key}")
    unknown = [k for k in options if fields and k not in fields]
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise InvalidOptionError(f"{flags}: not an option of the {args.executor} executor")
    try:
        return cls(**options)
    except TypeError as err:
        raise InvalidOptionError(f"{args.executor} executor: {err}") from err


def _split(item: str, flag: str) -> tuple[str, str]:
    from nemo_run_k8s.errors import InvalidOptionError

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidOptionError(f"{flag} {item!r}: expected KEY=VALUE")
    return key, value


if __name__ == "__main__":
    sys.exit(main())
