"""``@run.autoconvert``: a function that constructs objects becomes one that returns their config.

Calling the decorated function constructs nothing: fiddle's ``auto_config``
rewrites it so every call inside it becomes a ``run.Config`` node. Three kinds
of call run as written instead, so recipes compose as they do in NeMo-Run:

- another ``@run.autoconvert`` function: its config is used as the argument, so
  ``Trainer(model=my_model())`` gives ``Config(Trainer, model=Config(Model, ...))``;
- ``run.Config(...)`` / ``run.Partial(...)`` (or fiddle's): a body that returns
  a config returns that config;
- builtins and the other calls fiddle's default policy exempts (``len``, ...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, overload

import fiddle as fdl
from fiddle.experimental import auto_config as _ac
from fiddle.experimental import auto_config_policy

from nemo_run_k8s.config.buildables import Config, Partial
from nemo_run_k8s.errors import ConfigError

_CONFIG_TYPES = _ac.ConfigTypes(
    config_cls=Config, partial_cls=Partial, arg_factory_cls=fdl.ArgFactory
)


@overload
def autoconvert(fn: Callable[..., Any], /) -> Callable[..., Config]: ...


@overload
def autoconvert(*, partial: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def autoconvert(fn=None, /, *, partial=False):
    """Turns a function that constructs objects into one that returns their config.

    With ``partial=True`` the top node is a ``run.Partial``. Calls to other
    autoconvert functions and to ``run.Config``/``run.Partial`` inside the
    body run as written (see the module docstring).

    Control flow (``if``, loops, comprehensions) is not supported: write a
    plain function that returns ``run.Config`` objects instead.
    """
    if fn is None:
        return functools.partial(autoconvert, partial=partial)
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        auto = _ac.auto_config(
            fn,
            experimental_config_types=_CONFIG_TYPES,
            experimental_exemption_policy=_runs_as_written,
            # NeMo-Run allows reading fields of a configured dataclass (model.hidden).
            experimental_allow_dataclass_attribute_access=True,
            # We check the result ourselves, with a message that says what to return.
            experimental_result_must_contain_buildable=False,
        )
    except OSError as err:  # inspect.getsource failed
        raise ConfigError(
            f"@run.autoconvert cannot read the source of {name} ({err}); it rewrites the "
            "function's source, so define the function in a .py file, not at a prompt."
        ) from err
    except _ac.UnsupportedLanguageConstructError as err:
        source_line = (err.text or "").strip()
        raise ConfigError(
            f"@run.autoconvert cannot convert {name}: {_construct(err.msg)} "
            f"({err.filename}, line {err.lineno}: {source_line}). autoconvert records calls, "
            "it cannot evaluate branches or loops. Workaround: write a plain function that "
            "does the logic in Python and returns run.Config(...) objects."
        ) from err

    @functools.wraps(fn)
    def make_config(*args: Any, **kwargs: Any) -> fdl.Buildable:
        cfg = auto.as_buildable(*args, **kwargs)
        if not isinstance(cfg, fdl.Buildable):
            raise ConfigError(
                f"@run.autoconvert: {name} returned {type(cfg).__name__}, not a call "
                "to configure; return the object you want built, e.g. Model(...)"
            )
        if partial and not isinstance(cfg, Partial):
            return _as(Partial, cfg)
        if not partial and type(cfg) in (fdl.Config, fdl.Partial):
            # fiddle's own types, returned by the body: give them the tree helpers.
            return _as(Config if type(cfg) is fdl.Config else Partial, cfg)
        return cfg

    make_config.__auto_config__ = True  # type: ignore[attr-defined]
    make_config.wrapped = fn  # type: ignore[attr-defined]  # NeMo-Run's name for the original
    return make_config


def _as(cls: type[fdl.Buildable], cfg: fdl.Buildable) -> fdl.Buildable:
    """The same node as a ``cls``: ``fdl.cast`` without its unregistered-cast warning."""
    return cls.__unflatten__(*cfg.__flatten__())


def _runs_as_written(fn_or_cls: Any) -> bool:
    """auto_config's exemption policy: which calls in the body run instead of becoming configs."""
    if getattr(fn_or_cls, "__auto_config__", False) is True:
        return True  # another @run.autoconvert function: it returns its own config
    if isinstance(fn_or_cls, type) and issubclass(fn_or_cls, fdl.Buildable):
        return True  # run.Config(...) written in the body is already a config
    return auto_config_policy.latest(fn_or_cls)


_CONSTRUCTS = {
    "If": "an if/else statement",
    "IfExp": "a conditional expression (x if c else y)",
    "For": "a for loop",
    "AsyncFor": "an async for loop",
    "While": "a while loop",
    "ListComp": "a list comprehension",
    "SetComp": "a set comprehension",
    "DictComp": "a dict comprehension",
    "GeneratorExp": "a generator expression",
    "Try": "a try statement",
    "With": "a with statement",
}


def _construct(msg: str) -> str:
    """Says which construct an auto_config message is about, in plain words."""
    match = re.search(r"\((\w+)\)", msg)
    if match and match.group(1) in _CONSTRUCTS:
        return f"{_CONSTRUCTS[match.group(1)]} is not supported"
    return msg.rstrip(".").replace(" by auto_config", "")
