"""Where `lloop login` keeps the server's URL and the token: `$XDG_CONFIG_HOME/loopline/client.json`
(`~/.config/loopline/client.json` when the variable is unset or not absolute, as the XDG spec says), or
the file `LOOPLINE_CLIENT_CONFIG` names. The file is written whole or not at all (a temporary file
made 0600 from the start, then renamed over the old one) in a folder only its owner can enter."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from loopline_client.errors import ConfigError


def config_path() -> Path:
    if os.environ.get("LOOPLINE_CLIENT_CONFIG"):
        return Path(os.environ["LOOPLINE_CLIENT_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "loopline" / "client.json"


def load(path: Path | None = None) -> dict:
    """The saved settings ({} when there is no file); ConfigError when the file is there but unusable."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); run `lloop login` again to rewrite it") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k, ""), str) for k in ("url", "token")):
        raise ConfigError(f"{path} must be a JSON object with the strings \"url\" and \"token\"; "
                          f"run `lloop login` again to rewrite it")
    return data


def save(settings: dict, path: Path | None = None) -> Path:
    """Write the settings atomically, readable by the owner only (0600, folder 0700)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".client-", suffix=".json", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(settings, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove(path: Path | None = None) -> bool:
    path = path or config_path()
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
