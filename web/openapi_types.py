"""The dashboard's API types come from the API's own OpenAPI document: `python web/openapi_types.py`
dumps it from an app created in-process and runs the pinned openapi-typescript (web/node_modules) on it
into web/src/api/schema.d.ts. tests/integration/test_web_types.py checks the committed file is current."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

WEB = Path(__file__).resolve().parent
SCHEMA = WEB / "src" / "api" / "schema.d.ts"
BIN = WEB / "node_modules" / ".bin" / "openapi-typescript"


def typescript_for(document: dict) -> str:
    """What openapi-typescript makes of this document (the text of schema.d.ts)."""
    if not BIN.exists():
        raise FileNotFoundError(f"{BIN} is missing: run `cd web && npm ci`")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "openapi.json", Path(tmp) / "schema.d.ts"
        src.write_text(json.dumps(document, indent=1, sort_keys=True))  # one order, however it was read
        subprocess.run([str(BIN), str(src), "-o", str(out)], check=True, cwd=WEB, capture_output=True)
        return out.read_text()


def document_of(app) -> dict:
    """The document `/api/openapi.json` serves (which needs a token; this reads it in-process)."""
    from api.extensions import rest

    with app.app_context():
        return json.loads(json.dumps(rest.spec.to_dict()))


def main() -> None:
    sys.path.insert(0, str(WEB.parent))
    from api import create_app

    SCHEMA.write_text(typescript_for(document_of(create_app())))
    print(f"wrote {SCHEMA.relative_to(WEB.parent)}")


if __name__ == "__main__":
    main()
