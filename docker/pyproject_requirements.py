"""Print the requirements of pyproject.toml's [project] for the given extras, one per line.

The image installs these before copying the source, so a code change does not reinstall
TensorFlow. Extras that name loopline itself (all = loopline[inference,train]) are expanded, and
`loopline-client`, which is not on a package index, is replaced by its own dependencies
(client/pyproject.toml): the image installs the client from client/ with the source.
Usage (next to pyproject.toml): python pyproject_requirements.py [EXTRA[,EXTRA...]]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"loopline\[(?P<extras>[^\]]+)\]")
CLIENT = re.compile(r"loopline-client\b")


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        if name not in optional:
            raise SystemExit(f"unknown extra {name!r}; pyproject.toml defines {sorted(optional)}")
        if name in seen:
            raise SystemExit(f"extra {name!r} includes itself")
        out: list[str] = []
        for req in optional[name]:
            m = SELF.fullmatch(req.replace(" ", ""))
            if m:
                for inner in m["extras"].split(","):
                    out += expand(inner, (*seen, name))
            else:
                out.append(req)
        return out

    reqs = []
    for req in project.get("dependencies", []):
        if CLIENT.match(req.replace(" ", "")):
            client = tomllib.loads((pyproject.parent / "client" / "pyproject.toml").read_text())["project"]
            reqs += client.get("dependencies", [])
        else:
            reqs.append(req)
    for extra in extras:
        reqs += expand(extra, ())
    return list(dict.fromkeys(reqs))  # de-duplicate, keep order


if __name__ == "__main__":
    wanted = [e.strip() for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e.strip()]
    print("\n".join(requirements(Path("pyproject.toml"), wanted)))
