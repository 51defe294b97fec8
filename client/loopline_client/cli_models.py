"""`lloop checkpoint`, `train`, `deploy`, `deployment`, `suggest`, `pipeline`, `evaluate` and
`preannotate`: the models and what they do."""

from __future__ import annotations

import json

import click

from loopline_client.cli_common import _label_map_id, _output_options, _table, pass_state, project_option, State
from loopline_client.cli_jobs import _job_line
from loopline_client.errors import LooplineError


# --- checkpoints, training -----------------------------------------------------------------------
@click.group()
def checkpoint() -> None:
    """The model tree: roots, forks, weights."""


def _ck_line(ck: dict) -> str:
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in (ck.get("metrics") or {}).items() if not isinstance(v, (dict, list)))
    return (f"checkpoint {ck['id']} {ck.get('name') or ''} ({ck['architecture']}) {ck['status']}"
            + (f", {ck['epochs_done']} epochs" if ck.get("epochs_done") else "") + (f": {metrics}" if metrics else ""))


@checkpoint.command("list")
@project_option
@_output_options
@pass_state
def checkpoint_list(state: State, project_ref) -> None:
    rows = list(state.client().checkpoints(state.project_id(project_ref)))
    state.out(rows, _table(rows, ["id", "name", "architecture", "status", "parent_id", "epochs_done", "dataset_key"]))


@checkpoint.command("show")
@click.argument("checkpoint_id", type=int)
@project_option
@_output_options
@pass_state
def checkpoint_show(state: State, checkpoint_id, project_ref) -> None:
    ck = state.client().checkpoint(state.project_id(project_ref), checkpoint_id)
    state.out(ck, _ck_line(ck) + "".join(f"\n  {_epoch_line(e)}" for e in ck.get("curve") or []))


@checkpoint.command("root")
@click.option("--architecture", required=True, help="see `GET /api/architectures`")
@click.option("--label-map", "label_map_ref", required=True, help="label map id or name")
@click.option("--name")
@click.option("--input-size", type=int)
@click.option("--seed", type=int)
@project_option
@_output_options
@pass_state
def checkpoint_root(state: State, architecture, label_map_ref, name, input_size, seed, project_ref) -> None:
    """A root with fresh weights."""
    pid = state.project_id(project_ref)
    ck = state.client().create_checkpoint(pid, architecture, _label_map_id(state, pid, label_map_ref), name,
                                          input_size, seed)
    state.out(ck, _ck_line(ck))


@checkpoint.command("fork")
@click.argument("checkpoint_id", type=int)
@click.option("--name")
@project_option
@_output_options
@pass_state
def checkpoint_fork(state: State, checkpoint_id, name, project_ref) -> None:
    ck = state.client().fork(state.project_id(project_ref), checkpoint_id, name)
    state.out(ck, _ck_line(ck))


@checkpoint.command("weights")
@click.argument("checkpoint_id", type=int)
@click.option("-o", "--out", default=".", show_default=True, type=click.Path(), help="file or folder")
@project_option
@_output_options
@pass_state
def checkpoint_weights(state: State, checkpoint_id, out, project_ref) -> None:
    """Download the checkpoint's `.keras` file."""
    path = state.client().download_weights(state.project_id(project_ref), checkpoint_id, out, state.progress)
    state.out({"path": str(path)}, str(path))


def _epoch_line(entry: dict) -> str:
    figures = "  ".join(f"{k} {v:.4g}" for k, v in entry.items()
                        if k not in ("epoch", "seconds", "samples_per_s") and isinstance(v, (int, float)))
    return f"epoch {entry.get('epoch')}: {figures}"


@click.command()
@click.option("--dataset", "dataset_key", required=True, help="the dataset's key (`lloop dataset build`)")
@click.option("--checkpoint", "checkpoint_id", type=int, help="train this fresh (or failed) checkpoint")
@click.option("--from", "parent_id", type=int, help="fork this checkpoint and train the fork")
@click.option("--architecture", help="a new root of this architecture (default: the one that trains on the "
                                     "dataset's handler)")
@click.option("--name", help="name of the new root or fork")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--patience", type=int, help="early stopping after this many epochs without improvement")
@click.option("--reinit-head", is_flag=True, help="a new class head (the dataset's classes differ)")
@click.option("--seed", type=int)
@click.option("--no-wait", is_flag=True, help="answer once the run is queued")
@click.option("--timeout", default=7 * 86400.0, help="seconds to follow the run")
@project_option
@_output_options
@pass_state
def train(state: State, dataset_key, checkpoint_id, parent_id, architecture, name, epochs, batch_size,
          learning_rate, patience, reinit_head, seed, no_wait, timeout, project_ref) -> None:
    """Train on a dataset and follow the curve: a fresh root (default), a fork of --from, or --checkpoint."""
    if sum(x is not None for x in (checkpoint_id, parent_id, architecture)) > 1:
        raise click.UsageError("give one of --checkpoint, --from and --architecture")
    client = state.client()
    pid = state.project_id(project_ref)
    if parent_id is not None:
        checkpoint_id = client.fork(pid, parent_id, name)["id"]
    elif checkpoint_id is None:
        ds = client.dataset(dataset_key)
        if architecture is None:
            handler = ds["handler"].split("@")[0] + "@"
            fits = [a["name"] for a in client.architectures() if any(
                h == handler or h.startswith(handler) or handler.startswith(h) for h in a.get("handlers", []))]
            if not fits:
                raise LooplineError(400, "no_architecture", f"no architecture trains on {ds['handler']} datasets; "
                                                            f"pass --architecture")
            architecture = fits[0]
        size = (ds.get("config") or {}).get("size")  # a root takes the dataset's input size
        checkpoint_id = client.create_checkpoint(pid, architecture, ds["label_map_id"], name,
                                                 input_size=size if isinstance(size, int) else None)["id"]
    state.note(f"training checkpoint {checkpoint_id} on {dataset_key[:16]}")
    shown: set = set()

    def on_event(job: dict) -> None:
        details = job.get("details") or {}
        curve = list(details.get("curve") or [])
        if details.get("epoch_summary"):
            curve.append(details["epoch_summary"])
        for entry in curve:
            if entry.get("epoch") not in shown:
                shown.add(entry.get("epoch"))
                state.note(_epoch_line(entry))

    ck = client.train(pid, checkpoint_id, dataset_key, epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, early_stopping={"patience": patience} if patience else None,
                      reinit_head=reinit_head or None, seed=seed, wait=not no_wait, timeout=timeout,
                      on_event=on_event, progress=state.progress)
    state.out(ck, _ck_line(ck) if not no_wait else f"checkpoint {ck['id']} {ck['status']} (job {ck.get('job_id')})")


# --- deployments, suggestions, pipelines ---------------------------------------------------------
def _dep_line(d: dict) -> str:
    diff = f", max |ONNX - Keras| {d['max_abs_diff']:.2g}" if d.get("max_abs_diff") is not None else ""
    return (f"deployment {d['id']} of checkpoint {d['checkpoint_id']} ({d.get('task')}) {d['status']}"
            + (" active" if d.get("active") else "") + diff)


@click.command()
@click.argument("checkpoint_id", type=int)
@click.option("--activate/--no-activate", default=True, show_default=True, help="make it the active one")
@click.option("--no-wait", is_flag=True, help="answer once the deployment job is queued")
@project_option
@_output_options
@pass_state
def deploy(state: State, checkpoint_id, activate, no_wait, project_ref) -> None:
    """Export a trained checkpoint to ONNX, check it against Keras and make it the active model."""
    dep = state.client().deploy(state.project_id(project_ref), checkpoint_id, activate, wait=not no_wait,
                                progress=state.progress)
    state.out(dep, _dep_line(dep))


@click.group()
def deployment() -> None:
    """Deployments: list, activate (roll back)."""


@deployment.command("list")
@project_option
@_output_options
@pass_state
def deployment_list(state: State, project_ref) -> None:
    rows = list(state.client().deployments(state.project_id(project_ref)))
    state.out(rows, _table(rows, ["id", "checkpoint_id", "task", "status", "active", "max_abs_diff"]))


@deployment.command("activate")
@click.argument("deployment_id", type=int)
@project_option
@_output_options
@pass_state
def deployment_activate(state: State, deployment_id, project_ref) -> None:
    dep = state.client().activate(state.project_id(project_ref), deployment_id)
    state.out(dep, _dep_line(dep))


@click.command()
@click.argument("image_id", type=int)
@click.option("--region", nargs=4, type=float, metavar="X Y W H", help="the rough box, pixels")
@click.option("--point", nargs=2, type=float, metavar="X Y", help="a point on the object")
@project_option
@_output_options
@pass_state
def suggest(state: State, image_id, region, point, project_ref) -> None:
    """Ask the active suggester for the box around a rough region (or a point) of an image."""
    if bool(region) == bool(point):
        raise click.UsageError("give --region X Y W H or --point X Y")
    got = state.client().suggest(state.project_id(project_ref), image_id, region=region or None, point=point or None)
    a = got["annotation"]
    state.out(got, f"box {a['x']:.1f} {a['y']:.1f} {a['w']:.1f} {a['h']:.1f} class {got.get('class_name')} "
                   f"score {a.get('score') or 0:.3f} (annotation {a['id']}, revision {got['revision']}, "
                   f"{(got.get('timings') or {}).get('total', 0):.1f} ms)")


@click.group()
def pipeline() -> None:
    """Inference pipelines: download → preprocess → classify | suggest."""


@pipeline.command("list")
@_output_options
@pass_state
def pipeline_list(state: State) -> None:
    got = state.client().pipelines()
    state.out(got, "\n".join(f"{k}: {' → '.join(v) if isinstance(v, list) else v}"
                             for k, v in (got.get("pipelines") or {}).items()))


@pipeline.command("run")
@click.argument("name")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--url", "urls", multiple=True, help="an image URL (repeat for more)")
@click.option("--then", "then", multiple=True, help="a stage to run after NAME (repeat)")
@click.option("--region", "regions", nargs=4, type=float, multiple=True, metavar="X Y W H",
              help="the rough box of the next item (repeat, in item order)")
@project_option
@_output_options
@pass_state
def pipeline_run(state: State, name, files, urls, then, regions, project_ref) -> None:
    """Run pipeline (or stage) NAME on image FILES or --url addresses."""
    if bool(files) == bool(urls):
        raise click.UsageError("give image files or --url addresses (not both)")
    got = state.client().run_pipeline(name, state.project_id(project_ref), urls=urls, files=files,
                                      regions=list(regions) or None, then=then)
    lines = []
    for i, item in enumerate(got.get("items", [])):
        label = (files or urls)[i] if i < len(files or urls) else str(i)
        lines.append(f"{label}: " + (json.dumps(item["result"]) if "result" in item and item["result"] is not None
                                    else f"error {item.get('error')}"))
    state.out(got, "\n".join(lines))


@click.command()
@click.option("--checkpoint", "checkpoint_id", type=int, help="a detector checkpoint")
@click.option("--deployment", "deployment_id", type=int, help="a ready detection deployment")
@click.option("--label-map", "label_map_ref", help="score on this map's labelled images (id or name)")
@click.option("--subset", type=click.Choice(["all", "failed"]))
@click.option("--image", "image_ids", type=int, multiple=True, help="score on these images (repeat)")
@click.option("--no-wait", is_flag=True)
@project_option
@_output_options
@pass_state
def evaluate(state: State, checkpoint_id, deployment_id, label_map_ref, subset, image_ids, no_wait,
             project_ref) -> None:
    """Score a detector (COCO mAP) on labelled images."""
    if (checkpoint_id is None) == (deployment_id is None):
        raise click.UsageError("give --checkpoint or --deployment")
    pid = state.project_id(project_ref)
    ev = state.client().evaluate(pid, checkpoint_id=checkpoint_id, deployment_id=deployment_id,
                                 label_map_id=_label_map_id(state, pid, label_map_ref) if label_map_ref else None,
                                 subset=subset, image_ids=image_ids or None, wait=not no_wait,
                                 progress=state.progress)
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in (ev.get("metrics") or {}).items() if not isinstance(v, (dict, list)))
    state.out(ev, f"evaluation {ev['id']} {ev.get('status')}" + (f": {metrics}" if metrics else ""))


@click.command()
@click.option("--image", "image_ids", type=int, multiple=True, help="these images (repeat)")
@click.option("--ingest-job", "ingest_job_id", help="the images an ingest job added")
@click.option("--unannotated", is_flag=True, help="every image without a box")
@click.option("--threshold", type=float, help="the score a detection needs (default: the project's)")
@click.option("--no-wait", is_flag=True)
@project_option
@_output_options
@pass_state
def preannotate(state: State, image_ids, ingest_job_id, unannotated, threshold, no_wait, project_ref) -> None:
    """Store the active detector's detections on images as proposed boxes."""
    if sum(bool(x) for x in (image_ids, ingest_job_id, unannotated)) != 1:
        raise click.UsageError("give one of --image, --ingest-job and --unannotated")
    job = state.client().preannotate(state.project_id(project_ref), image_ids=image_ids or None,
                                     ingest_job_id=ingest_job_id, unannotated=unannotated or None,
                                     threshold=threshold, wait=not no_wait, progress=state.progress)
    state.out(job, _job_line(job) + (f"\n  result: {json.dumps(job['result'])[:300]}" if job.get("result") else ""))
