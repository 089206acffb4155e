"""``run.Script``: a script (a file, inline text, or a Python module) as a task.

A Script runs with bash, or with the job's Python for a ``.py`` file, a module
(``m=True``) or ``entrypoint="python"``; ``env_vars`` (alias ``env``) are set in
its environment and ``args`` are its argv entries. ``args`` are never joined
into a shell string, so an entry like ``"x; touch /tmp/pwned"`` reaches the
script as one ``$1`` (``sys.argv[1]``) and runs nothing. A file script is read
when the job is bundled and travels inside the bundle, so it runs the same in a
local process, a container or a pod; a module (``m=True``) is imported in the
job, so it must be installed in the image or under the job's code directory.

The fields and methods NeMo-Run's ``run.Script`` has (``entrypoint``, ``m``,
``env``, ``to_command()``, ``get_name()``, ``inline=""``) work the same here.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from nemo_run_k8s.errors import ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTRYPOINTS = ("bash", "python")


class Script:
    """A script to run as a job.

    Args:
      path: a script file on this machine (read at submit time), or with
        ``m=True`` a Python module name (``pkg.train``).
      inline: the script's text. Leading blank lines and common indentation are
        removed, so a ``#!`` line right after the opening quotes works.
      env_vars: environment variables (strings only) set for the script.
        ``env`` is another name for it (NeMo-Run's).
      args: argv entries passed to the script (strings only).
      entrypoint: ``"bash"`` or ``"python"``. By default a ``.py`` file or a
        module runs with python, anything else with bash.
      m: run ``path`` as a module: ``python -m path args...``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = "",
        *,
        inline: str | None = "",
        env_vars: Mapping[str, str] | None = None,
        args: Sequence[str] | None = None,
        entrypoint: str | None = None,
        m: bool = False,
        env: Mapping[str, str] | None = None,
    ):
        path = os.fspath(path) if path is not None else ""
        inline = "" if inline is None else inline
        if not isinstance(inline, str):
            raise ConfigError(f"run.Script inline must be a string, got {type(inline).__name__}")
        if bool(path) == bool(inline):
            raise ConfigError(
                "run.Script takes exactly one of path or inline, e.g. "
                "run.Script('train.sh') or run.Script(inline='echo hi')"
            )
        if env is not None and env_vars is not None:
            raise ConfigError("run.Script takes env_vars or env (the same thing), not both")
        if not isinstance(m, bool):
            raise ConfigError(f"run.Script m must be True or False, got {m!r}")
        self.path = path
        self.inline = _normalize_inline(inline) if inline else ""
        self.env_vars = _check_env(env_vars if env_vars is not None else env or {})
        self.args = _check_args(args or [])
        self.m = m
        self.entrypoint = self._check_entrypoint(entrypoint)

    def _check_entrypoint(self, entrypoint: str | None) -> str:
        if entrypoint is None:
            entrypoint = "python" if self.m or self.path.endswith(".py") else "bash"
        elif entrypoint not in _ENTRYPOINTS:
            raise ConfigError(
                f"run.Script entrypoint must be 'bash' or 'python', got {entrypoint!r}; "
                "to run another program, call it from a bash script"
            )
        if self.m and (entrypoint != "python" or self.inline):
            raise ConfigError(
                "run.Script(m=True) runs `python -m MODULE`: give the module as path, "
                "e.g. run.Script('pkg.train', m=True), with entrypoint 'python' or none"
            )
        return entrypoint

    @property
    def env(self) -> dict[str, str]:
        """NeMo-Run's name for :attr:`env_vars`."""
        return self.env_vars

    def text(self) -> str:
        """The script's text: the inline text, or the file read now ('' for a module)."""
        if self.inline:
            return self.inline
        if self.m:
            return ""  # the module is imported in the job; nothing to carry
        try:
            return Path(self.path).read_text()
        except OSError as err:
            raise ConfigError(f"run.Script: cannot read {self.path!r}: {err.strerror}") from err

    @property
    def name(self) -> str:
        """A file name for the script's copy in the job (the file's own name)."""
        if self.m:
            return self.path
        return Path(self.path).name if self.path else "inline-script"

    def command(self, script_file: str = "SCRIPT") -> list[str]:
        """The argv that runs the script in the job, once its text is at ``script_file``.

        ``python`` is the interpreter running this call (in the job: the
        entrypoint's, with the image's packages).
        """
        if self.entrypoint == "bash":
            return ["bash", script_file, *self.args]
        if self.m:
            return [sys.executable, "-m", self.path, *self.args]
        return [sys.executable, script_file, *self.args]

    def to_command(self, with_entrypoint: bool = False) -> list[str]:
        """The command as NeMo-Run's ``Script.to_command`` gives it: argv entries, no shell.

        A file: ``[path, *args]`` (``["-m", module, *args]`` for a module); an
        inline script: ``["-c", text]``, followed by ``$0`` and the args when
        there are args. ``with_entrypoint`` puts ``bash`` or ``python`` first.
        Unlike NeMo-Run, the inline text is not wrapped in quotes for a shell
        line: every entry is one argv entry as it stands.
        """
        if self.inline:
            cmd = ["-c", self.inline, self.name, *self.args] if self.args else ["-c", self.inline]
        elif self.m:
            cmd = ["-m", self.path, *self.args]
        else:
            cmd = [self.path, *self.args]
        return [self.entrypoint, *cmd] if with_entrypoint else cmd

    def get_name(self) -> str:
        """NeMo-Run's name of a script: the file's name, or the inline text's first characters."""
        if self.inline:
            return re.sub("[^0-9a-zA-Z]+", "_", self.inline.strip()[:10])
        return os.path.basename(self.path)

    def describe(self) -> str:
        """Exactly what will run (for dry runs and logs).

        A shell-quoted command line with the environment; for an inline script
        the line is followed by the script's text.
        """
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_vars.items())
        if self.m:
            argv = ["python", "-m", self.path, *self.args]
        else:
            argv = [self.entrypoint, self.path or "<inline script>", *self.args]
        line = shlex.join(argv)
        line = f"{env} {line}" if env else line
        if not self.inline:
            return line
        return f"{line}\n--- <inline script> ---\n{self.inline}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Script) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((self.path, self.inline, tuple(self.args)))

    def __repr__(self) -> str:
        fields = [f"path={self.path!r}"] if self.path else ["inline=..."]
        if self.m:
            fields.append("m=True")
        elif self.entrypoint != ("python" if self.path.endswith(".py") else "bash"):
            fields.append(f"entrypoint={self.entrypoint!r}")
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
        if "\0" in value:
            raise ConfigError(
                f"env_vars[{key!r}] contains a NUL character, which no process environment can "
                "hold; remove it"
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
