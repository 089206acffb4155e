"""The config room: how a task is described before it becomes a job.

- ``buildables``  ``run.Config`` / ``run.Partial``: fiddle's buildables with
  ``broadcast``, ``walk``, ``copy`` (alias ``clone``) and ``to_yaml``.
- ``arguments``   what happens to arguments when a config is created (dataclass
  instances become configs; ``Annotated[Optional[X], run.Config[X]]`` defaults).
- ``autoconvert`` ``@run.autoconvert``: a function that constructs objects
  returns their config instead (fiddle's ``auto_config``).
- ``traversal``   the one walk over a config tree (``iter_values``, ``fold``),
  built on ``fiddle.daglish``; paths read ``<root>.model.layers[0]``.
- ``printing``    ``str(cfg)`` and the ``path = value`` listing of dry runs.
- ``paths``       dotted paths (``optimizer.lr``): check and set, for sweeps and
  the CLI.
- ``yaml_io``     Hydra-style YAML: ``run.to_yaml`` / ``run.from_yaml``.
- ``script``      ``run.Script``: a bash or Python script as a task.
- ``overrides``   the CLI's factories and ``path=value`` overrides.

Nothing is imported here: ``run.Script`` is loaded inside every job, and
fiddle alone costs a few tenths of a second to import.
"""
