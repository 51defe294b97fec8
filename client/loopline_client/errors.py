"""What the client raises. Every failure of a call to the API is one `LooplineError` with the API's
status, code, message and fields (status 0 when no answer came at all: `Unreachable`); what happens after
an accepted call has its own classes: a job that ended badly, a download that does not verify."""

from __future__ import annotations


class LooplineError(Exception):
    """An error answer of the API: its HTTP status, code, message and the input fields it blames
    (`{"config.size": ["must be at most 1024"]}`)."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        self.status, self.code, self.message, self.fields = status, code, message, dict(fields or {})
        super().__init__(f"{status} {code}: {message}" if status else message)

    def detail(self) -> str:
        """The message with the fields it does not already name, on one line."""
        unsaid = {k: v for k, v in self.fields.items() if k not in self.message}
        parts = [f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in unsaid.items()]
        return str(self) + (f" ({'; '.join(parts)})" if parts else "")


class Unreachable(LooplineError):
    """No answer: the server could not be connected to, or did not answer in time."""

    def __init__(self, message: str):
        super().__init__(0, "unreachable", message)


class JobFailed(Exception):
    """A job ended `failed` or `cancelled`; `job` is its last JSON."""

    def __init__(self, message: str, job: dict | None = None):
        super().__init__(message)
        self.job = job or {}


class DatasetBuildFailed(JobFailed):
    """The build of a dataset failed or was cancelled (or the dataset is not ready)."""


class ChecksumMismatch(Exception):
    """A download or an unpacked file does not match its SHA-256; the bad copy has been deleted."""


class UnsafeArchive(Exception):
    """The zip names a path outside the destination folder (or a link); nothing was unpacked."""


class ConfigError(Exception):
    """The client's own settings file (written by `lloop login`) cannot be read or is malformed."""
