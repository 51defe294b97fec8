"""Ingest: turn uploaded files, zip members and URLs into stored images, one outcome per item.

Every item ends as `accepted`, `duplicate` (same bytes already in the project), `rejected` (with a
reason code and a sentence) or `skipped` (zip folders and resource forks). A bad item never stops the
others. Images are stored in groups, each committed after its blobs are durable, so a crash leaves only
whole images behind; a redelivered job recognises the images it added itself (by `Image.job_id`) and
reports them as accepted again rather than as duplicates.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable, Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from handlers.imaging import ImageLimits, ImageRejected, normalize
from store.schema import Image
from store.settings import Settings
from store.staging import Staging
from services.fetch import FetchPolicy, FetchRefused, fetch

ZIP_MAGIC = b"PK\x03\x04"
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")


class ItemRejected(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Item:
    """One thing to ingest: `read()` gives its bytes or raises with the reason it cannot."""

    name: str
    read: Callable[[], bytes]


RECENT_OUTCOMES = 64  # outcomes each progress event carries: more than one stored group (GROUP_ITEMS)


@dataclass
class Report:
    files: list[dict] = field(default_factory=list)
    image_ids: set[int] = field(default_factory=set)  # images already reported by this job

    def add(self, name: str, outcome: str, **extra) -> dict:
        entry = {"name": name, "outcome": outcome, **{k: v for k, v in extra.items() if v is not None}}
        self.files.append(entry)
        if entry.get("image_id") is not None:
            self.image_ids.add(entry["image_id"])
        return entry

    def counts(self) -> dict[str, int]:
        out = {"accepted": 0, "duplicate": 0, "rejected": 0, "skipped": 0}
        for f in self.files:
            out[f["outcome"]] += 1
        return out

    def summary(self) -> dict:
        return {**self.counts(), "files": self.files}

    def recent(self, last: int = RECENT_OUTCOMES) -> list[dict]:
        """The latest outcomes with their place in the job's list, for progress events: a page following the
        job shows each file as it is done, and one that missed an event fills the gap from the next ones or
        from the result."""
        start = max(0, len(self.files) - last)
        return [{**f, "index": i} for i, f in enumerate(self.files[start:], start=start)]


def limits_from(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels, thumbnail_size=settings.thumbnail_size
    )


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        max_bytes=settings.max_image_bytes, timeout=settings.fetch_timeout,
        allow_networks=tuple(settings.fetch_allow_networks),
    )


# --- items -------------------------------------------------------------------------------------
def iter_items(params: dict, staging: Staging, settings: Settings, report: Report) -> Iterator[Item]:
    """Staged files (a zip is opened and walked member by member) then URLs, in upload order.
    Items that fail before they have bytes (unsafe zip members, limits) go straight into `report`."""
    upload_id = params.get("staging")
    budget = [settings.max_upload_items]
    for f in params.get("files", []):
        path = staging.path(upload_id, f["file"])
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == ZIP_MAGIC
        if is_zip:
            yield from _zip_items(path, f["name"], settings, report, budget)
        else:
            yield _counted(Item(f["name"], lambda p=path: p.read_bytes()), budget)
    policy = fetch_policy(settings)
    for url in params.get("urls", []):
        yield _counted(Item(url, lambda u=url: _fetch(u, policy)), budget)


def count_entries(params: dict, staging: Staging) -> int:
    """How many report entries the upload will produce (zip members counted from the directory), for
    progress; reading a zip's directory is cheap."""
    total = len(params.get("urls", []))
    for f in params.get("files", []):
        path = staging.path(params["staging"], f["file"])
        try:
            with zipfile.ZipFile(path) as archive:
                total += len(archive.infolist())
        except (zipfile.BadZipFile, OSError):
            total += 1
    return total


def _counted(item: Item, budget: list[int]) -> Item:
    budget[0] -= 1
    if budget[0] < 0:
        return Item(item.name, _raiser("too_many_items", "the upload has more items than this server accepts at once"))
    return item


def _raiser(reason: str, message: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise ItemRejected(reason, message)

    return read


def _fetch(url: str, policy: FetchPolicy) -> bytes:
    try:
        return fetch(url, policy).data
    except FetchRefused as exc:
        raise ItemRejected(f"fetch_{exc.reason}", str(exc)) from None


def _zip_items(path, zip_name: str, settings: Settings, report: Report, budget: list[int]) -> Iterator[Item]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.add(zip_name, "rejected", reason="corrupt_zip", message=f"not a readable zip file: {exc}")
        return
    with archive:
        unpacked = 0
        for info in archive.infolist():
            name = f"{zip_name}/{info.filename}"
            if info.is_dir() or info.filename.startswith(_JUNK[0]) or PurePosixPath(info.filename).name in _JUNK[1:]:
                report.add(name, "skipped", message="folder or system file")
                continue
            problem = _unsafe_member(info)
            if problem:
                report.add(name, "rejected", reason="unsafe_path", message=problem)
                continue
            if info.flag_bits & 0x1:
                report.add(name, "rejected", reason="encrypted", message="encrypted zip members are not supported")
                continue
            if info.file_size > settings.max_image_bytes:
                report.add(name, "rejected", reason="too_large",
                           message=f"{info.file_size} bytes uncompressed; the limit is {settings.max_image_bytes}")
                continue
            unpacked += info.file_size
            if unpacked > settings.max_zip_bytes:
                report.add(name, "rejected", reason="zip_limit",
                           message=f"the zip unpacks to more than {settings.max_zip_bytes} bytes; the rest is not read")
                continue
            yield _counted(Item(name, lambda i=info: _read_member(archive, i, settings.max_image_bytes)), budget)


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Members are read into memory, never extracted, but a path that climbs out or a link is refused
    anyway: such an archive was made to attack an unzip somewhere."""
    raw = info.filename.replace("\\", "/")
    parts = PurePosixPath(raw).parts
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in parts:
        return f"member path {info.filename!r} points outside the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"member {info.filename!r} is a symbolic link"
    return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    try:
        with archive.open(info) as fh:
            data = fh.read(max_bytes + 1)  # never trust the declared size: a bomb may lie about it
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise ItemRejected("corrupt_zip", f"cannot read this zip member: {exc}") from None
    if len(data) > max_bytes:
        raise ItemRejected("too_large", f"unpacks to more than {max_bytes} bytes")
    return data


# --- storing -----------------------------------------------------------------------------------
GROUP_ITEMS = 32  # images stored together: one lookup, one durable blob flush, one commit
GROUP_BYTES = 64 * 1024 * 1024


def run(items: Iterator[Item], ingestor: "Ingestor", report: Report, progress, stored) -> None:
    """Read items in order and store them in groups. `progress(done)` is called per item read,
    `stored(entry)` once per stored or known item (COCO boxes hang off it)."""
    group: list[tuple[str, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal size
        for entry in ingestor.store(group, report):
            stored(entry)
        group.clear()
        size = 0

    for item in items:
        try:
            data = item.read()
        except ItemRejected as exc:
            report.add(item.name, "rejected", reason=exc.reason, message=str(exc))
        else:
            group.append((item.name, data))
            size += len(data)
        progress(len(report.files) + len(group))
        if len(group) >= GROUP_ITEMS or size >= GROUP_BYTES:
            flush()
    flush()


class Ingestor:
    """Stores images into one project on behalf of one job.

    A group's rows are committed only after all its blobs are durable, so a crash leaves whole images;
    a redelivered job redoes at most one group (blobs are content-addressed, so rewriting is harmless).
    The group's blobs are held (`BlobStore.hold`) from the put until the commit, so the collector never
    deletes a blob this group reuses between the two."""

    def __init__(self, sessions, blobs, settings: Settings, *, project_id: int, job_id: str, user_id: int | None):
        self.sessions, self.blobs = sessions, blobs
        self.project_id, self.job_id, self.user_id = project_id, job_id, user_id
        self.limits = limits_from(settings)

    def store(self, group: list[tuple[str, bytes]], report: Report) -> list[dict]:
        """Store a group of (name, bytes); return their report entries in order. Never raises for a bad
        image; an image uploaded elsewhere at the same moment makes the group retry one by one."""
        if not group:
            return []
        hashes = [hashlib.sha256(data).hexdigest() for _, data in group]
        plan: list[tuple] = []  # per item: ("new", image) | ("known", id, job) | ("same", index) | ("bad", exc)
        first: dict[str, int] = {}
        with self.sessions() as session:
            known = self._existing(session, set(hashes))
            for i, ((_, data), sha) in enumerate(zip(group, hashes, strict=True)):
                if sha in known:
                    plan.append(("known", *known[sha]))
                elif sha in first:
                    plan.append(("same", first[sha]))
                else:
                    try:
                        plan.append(("new", normalize(data, self.limits)))
                        first[sha] = i
                    except ImageRejected as exc:
                        plan.append(("bad", exc))
            new = [(i, p[1]) for i, p in enumerate(plan) if p[0] == "new"]
            with self.blobs.hold() as held:  # no blob of the group is collected before its rows are committed
                keys = iter(held.put_many([b for _, image in new for b in (image.data, image.thumbnail)]))
                rows = {i: self._row(group[i][0], hashes[i], image, next(keys), next(keys)) for i, image in new}
                session.add_all(rows.values())
                try:
                    session.commit()
                except IntegrityError:  # the same bytes landed from another upload a moment ago
                    session.rollback()
                    if len(group) == 1:
                        raise
                    return [entry for one in group for entry in self.store([one], report)]
        return [self._entry(report, name, plan[i], rows, i) for i, (name, _) in enumerate(group)]

    def _row(self, name: str, sha: str, image, blob_key: str, thumb_key: str) -> Image:
        return Image(
            project_id=self.project_id, sha256=sha, blob_key=blob_key, thumb_key=thumb_key, width=image.width,
            height=image.height, format=image.format, source_format=image.source_format, size_bytes=len(image.data),
            original_name=name[-512:], job_id=self.job_id, created_by=self.user_id,
        )

    def _entry(self, report: Report, name: str, step: tuple, rows: dict[int, Image], i: int) -> dict:
        kind = step[0]
        if kind == "new":
            return report.add(name, "accepted", image_id=rows[i].id, width=rows[i].width, height=rows[i].height)
        if kind == "same":
            return self._known(report, name, rows[step[1]].id, None)
        if kind == "known":
            return self._known(report, name, step[1], step[2])
        return report.add(name, "rejected", reason=step[1].reason, message=str(step[1]))

    def _existing(self, session, hashes: set[str]) -> dict[str, tuple[int, str | None]]:
        rows = session.execute(
            select(Image.sha256, Image.id, Image.job_id).where(Image.project_id == self.project_id,
                                                              Image.sha256.in_(hashes))
        ).all()
        return {sha: (image_id, job_id) for sha, image_id, job_id in rows}

    def _known(self, report: Report, name: str, image_id: int, job_id: str | None) -> dict:
        if job_id == self.job_id and image_id not in report.image_ids:
            return report.add(name, "accepted", image_id=image_id)  # added by an earlier attempt of this job
        return report.add(name, "duplicate", image_id=image_id, message=f"same bytes as image {image_id}")
