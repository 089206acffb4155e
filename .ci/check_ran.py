"""Fails CI when tests that need real parts (Docker engine, helm) were skipped or absent."""

import sys
import xml.etree.ElementTree as ET

REQUIRED = {"tests/docker": "Docker", "tests/helm": "Helm"}


def main(path: str) -> int:
    cases = ET.parse(path).getroot().iter("testcase")
    counts = {key: [0, 0] for key in REQUIRED}  # [ran, skipped]
    for case in cases:
        where = case.get("classname", "").replace(".", "/")
        for key in REQUIRED:
            if where.startswith(key):
                skipped = case.find("skipped") is not None
                counts[key][1 if skipped else 0] += 1
    ok = True
    for key, (ran, skipped) in counts.items():
        print(f"{REQUIRED[key]} tests: {ran} ran, {skipped} skipped")
        if ran == 0 or skipped:
            ok = False
    if not ok:
        print("error: tests that need real Docker/Helm were skipped or missing", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
