"""What users see while they wait: image builds, pushes, and jobs that have not started yet.

Everything goes to stderr, never stdout, so ``-o json`` output stays parseable.
How it looks is one setting per process, :func:`set_progress` (or the
``NEMO_RUN_K8S_PROGRESS`` environment variable, which it overrides):

- ``auto`` (default): ``live`` when stderr is a terminal or in a Jupyter
  notebook, else ``plain`` (and ``plain`` under CI).
- ``live``: a display drawn with rich: a spinner with the elapsed time, bytes per
  layer while pushing; finished steps stay behind as lines.
- ``plain``: the same events as lines (``nemo-run-k8s: ...``), for logs and pipes.
- ``off``: nothing.

rich is imported only when a live display starts, so ``import nemo_run_k8s``,
``--help`` and ``list`` never load it; without rich installed, ``live`` is ``plain``.

The trackers (:class:`BuildProgress`, :class:`PushProgress`, :class:`StartProgress`)
turn the docker engine's streams and a job's description into events; a view
(off, plain or live) shows them. Call sites hold a :class:`Reporter`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nemo_run_k8s.spec import JobDescription, JobState

ENV = "NEMO_RUN_K8S_PROGRESS"
MODES = ("auto", "live", "plain", "off")
_PLAIN_EVERY = 10.0  # seconds between two plain "still working" lines for the same thing
_mode: str | None = None


def set_progress(mode: str) -> str:
    """Sets how progress shows in this process: ``auto``, ``live``, ``plain`` or ``off``.

    Returns the previous setting, so a caller can restore it. ``run.set_progress("off")``
    silences builds, pushes and the wait for a job to start (job logs are separate).
    """
    global _mode
    if mode not in MODES:
        from nemo_run_k8s.errors import InvalidOptionError

        raise InvalidOptionError(f"progress mode {mode!r}: expected one of {', '.join(MODES)}")
    previous = _mode or os.environ.get(ENV, "auto")
    _mode = mode
    return previous


def current_mode() -> str:
    """The setting resolved for now: ``live``, ``plain`` or ``off``."""
    mode = _mode or os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        mode = "auto"
    if mode == "auto":
        if _in_notebook():
            mode = "live"
        elif os.environ.get("CI") or os.environ.get("TERM") == "dumb":
            mode = "plain"
        else:
            mode = "live" if _isatty(sys.stderr) else "plain"
    if mode == "live" and not _have_rich():
        mode = "plain"
    return mode


def reporter(quiet: bool | None = None) -> Reporter:
    """A reporter for the current mode; ``quiet=True`` silences it, ``False`` forces output."""
    mode = current_mode()
    if quiet:
        mode = "off"
    elif quiet is False and mode == "off":
        mode = "plain"
    return Reporter(mode)


# --------------------------------------------------------------------------- views


class _View:
    """Where events go. ``line`` stays; ``status`` is the moving part (live rows)."""

    def line(self, text: str) -> None:
        pass

    def status(self, key: str, text: str, done: float | None = None, total: float | None = None):
        pass

    def remove(self, key: str) -> None:
        """The moving part ``key`` is finished (its line, if any, was printed)."""

    def close(self) -> None:
        pass


class _PlainView(_View):
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self._last: dict[str, float] = {}

    def line(self, text: str) -> None:
        out = self.stream or sys.stderr
        print(f"nemo-run-k8s: {text}", file=out, flush=True)

    def status(self, key: str, text: str, done: float | None = None, total: float | None = None):
        # A still-working line now and then, so a long quiet step does not look hung.
        now = time.monotonic()
        last = self._last.setdefault(key, now)
        if now - last >= _PLAIN_EVERY:
            self._last[key] = now
            self.line(text + (f" ({size(done)} of {size(total)})" if done and total else ""))


class _LiveView(_View):
    """A rich Progress on stderr: rows are transient, lines are printed above them."""

    active = False  # rich allows one live display at a time; a nested one prints plain lines

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            Task,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class Bar(BarColumn):  # only for rows that count bytes
            def render(self, task: Task) -> Any:
                return super().render(task) if task.total else Text("")

        class Bytes(DownloadColumn):
            def render(self, task: Task) -> Any:
                return super().render(task) if task.total else Text("")

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            Bar(bar_width=24),
            Bytes(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()
        _LiveView.active = True

    def line(self, text: str) -> None:
        from rich.text import Text

        self.progress.console.print(Text(text), soft_wrap=True)  # the terminal wraps

    def status(self, key: str, text: str, done: float | None = None, total: float | None = None):
        task = self.tasks.get(key)
        if task is None:
            task = self.tasks[key] = self.progress.add_task(text, total=total)
        self.progress.update(task, description=text, completed=done or 0, total=total)

    def remove(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            self.progress.remove_task(task)

    def close(self) -> None:
        self.progress.stop()
        _LiveView.active = False


class Reporter:
    """Opens trackers in one mode; use each tracker as a context manager."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @property
    def off(self) -> bool:
        return self.mode == "off"

    def _view(self) -> _View:
        if self.mode == "live" and not _LiveView.active:
            try:
                return _LiveView()
            except Exception:  # no usable terminal after all: plain lines
                return _PlainView()
        return _PlainView() if self.mode != "off" else _View()

    def note(self, text: str) -> None:
        """One line: something that happened, with nothing to wait for."""
        if self.mode == "plain" or (self.mode == "live" and _LiveView.active):
            _PlainView().line(text)
        elif self.mode == "live":
            _live_line(text)

    @contextlib.contextmanager
    def build(self, tag: str, context_bytes: int) -> Iterator[BuildProgress]:
        with self._open() as view:
            yield BuildProgress(view, tag, context_bytes)

    @contextlib.contextmanager
    def push(self, repo: str, tag: str) -> Iterator[PushProgress]:
        with self._open() as view:
            yield PushProgress(view, repo, tag)

    @contextlib.contextmanager
    def pull(self, repo: str, tag: str) -> Iterator[PullProgress]:
        with self._open() as view:
            yield PullProgress(view, repo, tag)

    @contextlib.contextmanager
    def start(self, job_id: str) -> Iterator[StartProgress]:
        with self._open() as view:
            yield StartProgress(view, job_id)

    @contextlib.contextmanager
    def _open(self) -> Iterator[_View]:
        view = self._view()
        try:
            yield view
        finally:
            view.close()


def _live_line(text: str) -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, highlight=False).print(Text(text), soft_wrap=True)


# --------------------------------------------------------------------------- trackers

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDER_NOISE = ("Removing intermediate container", "Successfully built", "Successfully tagged")


class BuildProgress:
    """A classic-builder build: context size, each step reused or built, elapsed time."""

    def __init__(self, view: _View, tag: str, context_bytes: int) -> None:
        self.view, self.tag = view, tag
        self.started = time.monotonic()
        self.reused = self.built = 0
        self._step: tuple[str, str] | None = None  # ("3/9", "RUN ...") not yet shown
        self._current = ""
        view.line(f"building {tag} (context {size(context_bytes)})")
        view.status("build", f"building {tag}")

    def feed(self, text: str) -> None:
        """One ``stream`` text of the engine's build output."""
        for raw in text.splitlines():
            line = raw.strip()
            step = _STEP.match(line)
            if step:
                self._flush("")
                self._step = (f"{step[1]}/{step[2]}", step[3])
                self._current = f"step {step[1]}/{step[2]}: {_short(step[3])}"
            elif line.startswith("---> Using cache"):
                self.reused += 1
                self._flush("reused")
            elif line.startswith("---> Running in"):
                self.built += 1
                self._flush("building")
            elif line.startswith(_BUILDER_NOISE):
                continue
            elif line and not line.startswith("--->") and self._current:
                self.view.status("build", f"{self._current} | {_short(line, 60)}")
                continue
            if self._current:
                self.view.status("build", self._current)

    def _flush(self, how: str) -> None:
        if self._step is not None:
            number, instruction = self._step
            if not how and instruction.split(" ", 1)[0].upper() in ("COPY", "ADD"):
                how = "built"  # the classic builder says neither "Using cache" nor "Running in"
                self.built += 1
            self.view.line(f"  step {number}{' ' + how if how else ''}: {_short(instruction)}")
            self._step = None

    def done(self) -> None:
        self._flush("")
        seconds = time.monotonic() - self.started
        self.view.line(
            f"built {self.tag} in {seconds:.1f}s: {self.reused} step(s) reused, {self.built} built"
        )


class PushProgress:
    """A ``docker push``: bytes per layer, the total, layers the registry already had."""

    verb, verb_done, verb_ing = "push", "pushed", "pushing"
    sending: tuple[str, ...] = ("Pushing",)
    finished_statuses: tuple[str, ...] = ("Pushed",)
    present_statuses: tuple[str, ...] = ("Layer already exists", "Mounted from")
    present_words = "already in the registry"

    def __init__(self, view: _View, repo: str, tag: str) -> None:
        self.view, self.name = view, f"{repo}:{tag}"
        self.started = time.monotonic()
        self.layers: dict[str, tuple[int, int]] = {}  # id -> (bytes done, total)
        self.existing: set[str] = set()
        self.finished: set[str] = set()
        view.line(f"{self.verb_ing} {self.name}")
        view.status("total", f"{self.verb_ing} {self.name}")

    def feed(self, chunk: dict[str, Any]) -> None:
        """One decoded chunk of the engine's stream."""
        layer, status = chunk.get("id", ""), chunk.get("status", "")
        if not layer or not status or layer in self.finished:
            return
        detail = chunk.get("progressDetail") or {}
        sent, total = self.layers.get(layer, (0, 0))
        if status in self.sending and detail.get("total"):
            sent, total = int(detail.get("current", 0)), int(detail["total"])
            self.layers[layer] = (sent, total)
            self.view.status(layer, f"  layer {layer}", sent, total)
        elif status in self.finished_statuses:
            self.layers[layer] = (total, total)
            self.finished.add(layer)
            self.view.remove(layer)
            self.view.line(f"  layer {layer}: {self.verb_done} {size(total)}")
        elif status.startswith(self.present_statuses):
            self.existing.add(layer)
            self.finished.add(layer)
            self.view.remove(layer)
            self.view.line(f"  layer {layer}: {self.present_words}")
        else:
            self.layers.setdefault(layer, (0, 0))
        done = sum(s for s, _ in self.layers.values())
        whole = sum(t for _, t in self.layers.values())
        self.view.status("total", f"{self.verb_ing} {self.name}", done, whole or None)

    def done(self, ref: str) -> None:
        moved = sum(t for lid, (_, t) in self.layers.items() if lid not in self.existing)
        seconds = time.monotonic() - self.started
        self.view.line(
            f"{self.verb_done} {ref}: {len(self.finished)} layer(s), {len(self.existing)} "
            f"already there, {size(moved)} {'sent' if self.verb == 'push' else 'downloaded'} "
            f"in {seconds:.1f}s"
        )


class PullProgress(PushProgress):
    """A ``docker pull`` (a base image): bytes downloaded per layer, layers already here."""

    verb, verb_done, verb_ing = "pull", "pulled", "pulling"
    sending = ("Downloading",)
    finished_statuses = ("Pull complete",)
    present_statuses = ("Already exists",)
    present_words = "already here"


class StartProgress:
    """A job that has not started: its state and each replica's reason, as they change."""

    def __init__(self, view: _View, job_id: str) -> None:
        self.view, self.job_id = view, job_id
        self.started = time.monotonic()
        self._shown: dict[str, str] = {}
        self.lines_shown = 0

    def update(self, description: JobDescription) -> None:
        state = description.state.value
        for key, text in waiting_lines(description):
            if self._shown.get(key) != text:
                self._shown[key] = text
                self.lines_shown += 1
                self.view.line(f"{self.job_id} {text}")
        self.view.status("start", f"waiting for {self.job_id} to start ({state})")

    def done(self, state: JobState) -> None:
        if self.lines_shown:
            seconds = time.monotonic() - self.started
            self.view.line(f"{self.job_id} {state.value} after {seconds:.0f}s")


def waiting_lines(description: JobDescription) -> list[tuple[str, str]]:
    """(key, text) for what keeps a job from running: one per replica not running, then events."""
    lines = []
    missing = [r for r in description.replicas if r.phase == "not created"]
    none_yet = bool(missing) and len(missing) == len(description.replicas)
    if none_yet:  # one line rather than one per replica
        why = missing[0].detail or "no pods yet"
        lines.append(("pods", f"{why} ({', '.join(r.label for r in missing)})"))
    for r in description.replicas:
        if none_yet or r.phase in ("Running", "Succeeded"):
            continue
        lines.append((r.label, f"{r.label}: {r.phase}" + (f": {r.detail}" if r.detail else "")))
    if not description.replicas and description.reason:
        lines.append(("reason", description.reason.splitlines()[0]))
    lines += [(f"warning {w}", f"warning: {w}") for w in description.warnings[-1:]]
    return lines


def watch_start(
    describe: Callable[[], JobDescription],
    job_id: str,
    poll: float,
    quiet: bool | None = None,
) -> JobState:
    """Waits while a job is PENDING, showing why; returns the first other state.

    ``describe`` reads the job from its backend (``Job.describe``).
    """
    from nemo_run_k8s.spec import JobState

    description = describe()
    if description.state is not JobState.PENDING:  # started already: nothing to show
        return description.state
    with reporter(quiet).start(job_id) as start:
        delay = 0.01
        while True:
            if description.state is not JobState.PENDING:
                start.done(description.state)
                return description.state
            start.update(description)
            time.sleep(delay)
            delay = min(delay * 1.5, poll)
            description = describe()


# --------------------------------------------------------------------------- helpers


def size(n: float | None) -> str:
    """Bytes for people: ``20.3 MB`` (decimal units, as docker prints them)."""
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _have_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return type(ip).__name__ == "ZMQInteractiveShell"


__all__: Sequence[str] = ["MODES", "Reporter", "current_mode", "reporter", "set_progress"]
