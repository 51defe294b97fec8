"""Uploads waiting for their ingest job: one folder per upload under the staging directory.

The API streams each uploaded file here and answers at once; the ingest job reads the files and removes
the folder when it has finished with them (a job redelivered after a crash finds them still there).
Folders are named by a random id and files by their position, never by anything a client chose.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from store.blobs import CHUNK, BlobTooLarge

_ID = re.compile(r"^[0-9a-f]{32}$")
_FILE = re.compile(r"^[0-9]{5}$")


class Staging:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def new_upload(self) -> str:
        upload_id = uuid.uuid4().hex
        (self.root / upload_id).mkdir(parents=True)
        return upload_id

    def folder(self, upload_id: str) -> Path:
        if not _ID.match(upload_id or ""):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.root / upload_id

    def path(self, upload_id: str, file_id: str) -> Path:
        if not _FILE.match(file_id or ""):
            raise ValueError(f"not a staged file id: {file_id!r}")
        return self.folder(upload_id) / file_id

    def save(self, upload_id: str, index: int, stream: BinaryIO, max_bytes: int | None = None,
             durable: bool = True) -> tuple[str, int]:
        """Copy `stream` into the upload as file number `index`; return (file id, size). Over `max_bytes`
        nothing is kept and BlobTooLarge is raised. With `durable=False` call `sync` once at the end."""
        file_id = f"{index:05d}"
        target = self.path(upload_id, file_id)
        size = 0
        try:
            with open(target, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise BlobTooLarge(f"file exceeds {max_bytes} bytes")
                    out.write(chunk)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return file_id, size

    def sync(self, upload_id: str) -> None:
        """Make every file of the upload durable (one journal flush serves them all)."""
        folder = self.folder(upload_id)
        for path in sorted(folder.iterdir()):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self, upload_id: str) -> bool:
        return self.folder(upload_id).is_dir()

    def remove(self, upload_id: str) -> None:
        shutil.rmtree(self.folder(upload_id), ignore_errors=True)
