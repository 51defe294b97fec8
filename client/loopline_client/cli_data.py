"""`lloop images`, `lloop boxes`, `lloop coco` and `lloop dataset`: the data, in and out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from loopline_client.cli_common import (_json_arg, _label_map_id, _output_options, _table, pass_state,
                                        project_option, State)


# --- images, boxes, COCO -------------------------------------------------------------------------
@click.group()
def images() -> None:
    """Images: upload files, folders, zips and URLs; list them."""


def _upload_report(state: State, result: dict, what: str) -> None:
    counts = ", ".join(f"{result[k]} {k}" for k in ("accepted", "duplicate", "rejected", "skipped") if result.get(k))
    jobs = ", ".join(j["id"] for j in result["jobs"])
    lines = [f"{what}: {counts or 'nothing'} (job {jobs})"]
    extra = result.get("result") or {}
    lines += [f"  {k}: {v}" for k, v in extra.items() if not isinstance(v, (dict, list))]
    for f in result["files"]:
        if f["outcome"] != "accepted":
            why = f" {f['reason']}: {f.get('message', '')}" if f.get("reason") else ""
            lines.append(f"  {f['outcome']} {f['name']}{why}")
    state.out(result, "\n".join(lines))


@images.command("upload")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, readable=True))
@click.option("--url", "urls", multiple=True, help="an image URL to fetch (repeat for more)")
@click.option("--no-wait", is_flag=True, help="answer once the files are sent; do not wait for the ingest")
@project_option
@_output_options
@pass_state
def images_upload(state: State, paths, urls, no_wait, project_ref) -> None:
    """Upload image files, zips of them, folders (walked for images and zips) and --url addresses;
    prints each file's outcome (accepted, duplicate, rejected with the reason)."""
    if not paths and not urls:
        raise click.UsageError("give files, folders or zips to upload, or --url")
    result = state.client().upload(state.project_id(project_ref), paths, urls, wait=not no_wait,
                                   progress=state.progress)
    _upload_report(state, result, "upload")


@images.command("list")
@click.option("--annotated/--not-annotated", default=None, help="only images with / without boxes")
@click.option("--limit", type=int, default=50, show_default=True)
@project_option
@_output_options
@pass_state
def images_list(state: State, annotated, limit, project_ref) -> None:
    rows = list(state.client().images(state.project_id(project_ref), limit=limit, annotated=annotated))
    state.out(rows, _table(rows, ["id", "original_name", "width", "height", "boxes", "revision"]))


@click.group()
def boxes() -> None:
    """Boxes of an image (pixel x, y, w, h), written under the image's revision."""


@boxes.command("list")
@click.argument("image_id", type=int)
@project_option
@_output_options
@pass_state
def boxes_list(state: State, image_id, project_ref) -> None:
    got = state.client().boxes(state.project_id(project_ref), image_id)
    state.out(got, f"image {image_id}, revision {got['revision']}\n"
              + _table(got["items"], ["id", "class_id", "x", "y", "w", "h", "source", "status", "score"]))


@boxes.command("add")
@click.argument("image_id", type=int)
@click.option("--class", "class_ref", required=True, help="class id or name")
@click.option("--box", nargs=4, type=float, required=True, metavar="X Y W H", help="pixels")
@click.option("--revision", type=int, help="the image revision you last read (default: read it now)")
@project_option
@_output_options
@pass_state
def boxes_add(state: State, image_id, class_ref, box, revision, project_ref) -> None:
    client = state.client()
    pid = state.project_id(project_ref)
    class_id = client.class_ids(pid, [class_ref])[0]
    if revision is None:
        revision = client.boxes(pid, image_id)["revision"]
    written = client.add_box(pid, image_id, revision, class_id, *box)
    state.out(written, f"box {written['annotation']['id']} on image {image_id}, revision {written['revision']}")


@click.group()
def coco() -> None:
    """COCO detection files: import with their images, export."""


@coco.command("import")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.argument("images", nargs=-1, type=click.Path(exists=True, readable=True))
@click.option("--no-wait", is_flag=True, help="do not wait for the import job")
@project_option
@_output_options
@pass_state
def coco_import(state: State, annotations, images, no_wait, project_ref) -> None:
    """Import ANNOTATIONS (COCO JSON) with its IMAGES (files, folders, zips): classes matched or created
    by name, boxes attached by file name."""
    if not images:
        raise click.UsageError("give the images the COCO file names (files, folders or zips)")
    result = state.client().import_coco(state.project_id(project_ref), annotations, images, wait=not no_wait,
                                        progress=state.progress)
    _upload_report(state, result, "coco import")


@coco.command("export")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), help="file (default: stdout)")
@click.option("--status", help="boxes with this status (default: accepted)")
@click.option("--label-map", "label_map_id", type=int, help="only this label map's classes")
@project_option
@_output_options
@pass_state
def coco_export(state: State, out, status, label_map_id, project_ref) -> None:
    doc = state.client().export_coco(state.project_id(project_ref), status, label_map_id)
    text = json.dumps(doc, indent=2)
    if out:
        tmp = Path(out).with_name(Path(out).name + ".part")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, out)
        state.note(f"{len(doc.get('images', []))} images, {len(doc.get('annotations', []))} boxes -> {out}")
    else:
        click.echo(text)


# --- datasets ------------------------------------------------------------------------------------
@click.group()
def dataset() -> None:
    """Datasets: build one on the server, download it verified."""


def _dataset_options(fn):
    for opt in reversed([
        project_option,
        click.option("--name", required=True, help="dataset name"),
        click.option("--handler", default="detection@1", show_default=True, help="handler@version"),
        click.option("--label-map", "label_map_ref", required=True, help="label map id or name"),
        click.option("--subset", type=click.Choice(["all", "failed"]), default="all", show_default=True),
        click.option("--config", "config", callback=_json_arg,
                     help="handler options: a JSON object, or @file with one"),
        click.option("--timeout", default=3600.0, show_default=True, help="seconds to wait for the build"),
    ]):
        fn = opt(fn)
    return fn


@dataset.command("get")
@_dataset_options
@click.option("--out", "dest", default=".", show_default=True, type=click.Path(file_okay=False),
              help="the folder <key>/ is placed in")
@_output_options
@pass_state
def dataset_get(state: State, project_ref, name, handler, label_map_ref, subset, config, timeout, dest) -> None:
    """Request a dataset, wait for its build, download and verify it; print the folder's path
    (its name is the dataset's key)."""
    client = state.client()
    pid = state.project_id(project_ref)
    built = client.build_dataset(pid, name, handler, _label_map_id(state, pid, label_map_ref), config, subset,
                                 wait_timeout=timeout, progress=state.progress)
    folder = client.fetch(built, dest, progress=state.progress)
    state.out({**built, "path": str(folder)}, str(folder))


@dataset.command("build")
@_dataset_options
@_output_options
@pass_state
def dataset_build(state: State, project_ref, name, handler, label_map_ref, subset, config, timeout) -> None:
    """Request a dataset and wait for its build (nothing is downloaded); print its key."""
    pid = state.project_id(project_ref)
    built = state.client().build_dataset(pid, name, handler, _label_map_id(state, pid, label_map_ref), config,
                                         subset, wait_timeout=timeout, progress=state.progress)
    state.out(built, built["key"])


@dataset.command("list")
@project_option
@click.option("--all-projects", is_flag=True, help="datasets of every project of yours")
@_output_options
@pass_state
def dataset_list(state: State, project_ref, all_projects) -> None:
    pid = None if all_projects else state.project_id(project_ref)
    rows = list(state.client().datasets(pid))
    state.out(rows, _table([{**d, "key": d["key"][:16]} for d in rows],
                           ["key", "name", "handler", "label_map_id", "status", "size_bytes"]))


@dataset.command("show")
@click.argument("key")
@_output_options
@pass_state
def dataset_show(state: State, key) -> None:
    d = state.client().dataset(key)
    state.out(d, f"{d['key']} {d['name']} {d['handler']} {d['status']} records {d.get('manifest', {}).get('records')}")
