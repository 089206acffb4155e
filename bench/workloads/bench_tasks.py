"""The trivial job every tool runs in the benchmarks: the cost measured is the tool's own."""

from pathlib import Path


def trivial(marker: str = "") -> int:
    """Returns 1; with ``marker``, first writes that file, so a runner can tell the job ran."""
    if marker:
        Path(marker).write_text("1")
    return 1


def check_marker(marker: str) -> None:
    """Exits non-zero unless the job wrote ``marker`` (some tools report success regardless)."""
    import sys

    if not Path(marker).exists():
        sys.exit(f"the job did not run: {marker} was not written")
