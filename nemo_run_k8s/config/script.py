"""``run.Script``: a bash script (a file or inline text) as a task.

A Script runs with bash, with ``env_vars`` in its environment and ``args`` as
its argv entries: ``args`` are never joined into a shell string, so an entry
like ``"x; touch /tmp/pwned"`` reaches the script as one ``$1`` and runs
nothing. A file script is read when the job is bundled and travels inside the
bundle, so it runs the same in a local process, a container or a pod.
"""

from __future__ import annotations

import os
import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from nemo_run_k8s.errors import ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Script:
    """A bash script to run as a job.

    Args:
      path: a script file on this machine (read at submit time).
      inline: the script's text. Leading blank lines and common indentation are
        removed, so a ``#!`` line right after the opening quotes works.
      env_vars: environment variables (strings only) set for the script.
      args: argv entries passed to the script (strings only).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        inline: str | None = None,
        env_vars: Mapping[str, str] | None = None,
        args: Sequence[str] | None = None,
    ):
        if (path is None) == (inline is None):
            raise ConfigError(
                "run.Script takes exactly one of path or inline, e.g. "
                "run.Script('train.sh') or run.Script(inline='echo hi')"
            )
        if inline is not None and not isinstance(inline, str):
            raise ConfigError(f"run.Script inline must be a string, got {type(inline).__name__}")
        self.path = os.fspath(path) if path is not None else None
        self.inline = _normalize_inline(inline) if inline is not None else None
        self.env_vars = _check_env(env_vars or {})
        self.args = _check_args(args or [])

    def text(self) -> str:
        """The script's text: the inline text, or the file read now."""
        if self.inline is not None:
            return self.inline
        assert self.path is not None
        try:
            return Path(self.path).read_text()
        except OSError as err:
            raise ConfigError(f"run.Script: cannot read {self.path!r}: {err.strerror}") from err

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else "inline-script"

    def command(self, script_file: str = "SCRIPT") -> list[str]:
        """The argv that runs the script once its text is at ``script_file``."""
        return ["bash", script_file, *self.args]

    def describe(self) -> str:
        """Exactly what will run (for dry runs and logs).

        A shell-quoted command line with the environment; for an inline script
        the line is followed by the script's text.
        """
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_vars.items())
        target = self.path if self.path is not None else "<inline script>"
        line = shlex.join(["bash", target, *self.args])
        line = f"{env} {line}" if env else line
        if self.inline is None:
            return line
        return f"{line}\n--- <inline script> ---\n{self.inline}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Script) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((self.path, self.inline, tuple(self.args)))

    def __repr__(self) -> str:
        fields = [f"path={self.path!r}"] if self.path is not None else ["inline=..."]
        if self.env_vars:
            fields.append(f"env_vars={self.env_vars!r}")
        if self.args:
            fields.append(f"args={self.args!r}")
        return f"Script({', '.join(fields)})"


def _normalize_inline(text: str) -> str:
    text = textwrap.dedent(text).lstrip("\n")
    return text if text.endswith("\n") else text + "\n"


def _check_env(env_vars: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(env_vars, Mapping):
        raise ConfigError(f"env_vars must be a mapping of strings, got {type(env_vars).__name__}")
    checked = {}
    for key, value in env_vars.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ConfigError(f"env_vars: {key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise ConfigError(
                f"env_vars[{key!r}] must be a string, got {type(value).__name__} {value!r}; "
                f"write it as a string, e.g. {key}={str(value)!r}"
            )
        checked[key] = value
    return checked


def _check_args(args: Sequence[str]) -> list[str]:
    if isinstance(args, str):
        raise ConfigError(
            f"args must be a list of argv entries, not one string: e.g. args={args.split()!r}"
        )
    for i, arg in enumerate(args):
        if not isinstance(arg, str):
            raise ConfigError(
                f"args[{i}] must be a string, got {type(arg).__name__} {arg!r}; "
                f"write it as {str(arg)!r}"
            )
    return list(args)
