"""The deploy job (deployment queue): Keras checkpoint → ONNX, verified against Keras, stored, activated.

The export is refused (the deployment `failed`, with the difference in its error) when onnxruntime's
outputs differ from Keras's by more than `LOOPLINE_DEPLOY_TOLERANCE` on sample inputs. TensorFlow is
imported inside the job. A redelivered job finds a deployment already `ready` and only (re)activates it.
"""

from __future__ import annotations

import shutil

from sqlalchemy import update

from store.schema import Checkpoint, Deployment, DeploymentStatus
from store.scratch import fresh_scratch
from services.deployments import activate


def deploy(ctx, deployment_id: int, activate_it: bool) -> dict:
    rt = ctx.rt
    with rt.sessions() as session:
        deployment = session.get(Deployment, deployment_id)
        if deployment is None:
            raise RuntimeError(f"deployment {deployment_id} was deleted")
        if deployment.status is DeploymentStatus.building:
            checkpoint = session.get(Checkpoint, deployment.checkpoint_id)
            ctx.progress(0.1, None, f"exporting checkpoint {checkpoint.id} to ONNX")
            model_key, diff = _export(ctx, deployment.id, checkpoint.weights_key)  # a failure settles the row
            tolerance = rt.settings.deploy_tolerance
            if diff > tolerance:
                why = (f"ONNX and Keras outputs differ by up to {diff:.3g} on sample inputs, over the tolerance "
                       f"{tolerance:g}; the deployment is refused")
                _fail(session, deployment, why, max_abs_diff=diff)
                raise RuntimeError(why)
            session.execute(update(Deployment).where(Deployment.id == deployment.id,
                                                     Deployment.status == DeploymentStatus.building)
                            .values(status=DeploymentStatus.ready, model_key=model_key, max_abs_diff=diff))
            session.commit()
            session.refresh(deployment)
        if deployment.status is not DeploymentStatus.ready:
            raise RuntimeError(f"deployment {deployment.id} is {deployment.status.value}: {deployment.error}")
        if activate_it:
            activate(rt, session, deployment)
            session.commit()
        return {"deployment_id": deployment.id, "max_abs_diff": deployment.max_abs_diff,
                "active": deployment.active, "model_key": deployment.model_key}


def _export(ctx, deployment_id: int, weights_key: str) -> tuple[str, float]:
    from models import export, networks, training  # TensorFlow: only the deployment pool gets here

    work = fresh_scratch(ctx.rt.settings.work_dir, f"deploy-{deployment_id}-", ctx.id)
    try:
        keras_path = work / "model.keras"
        ctx.rt.blobs.save_as(weights_key, keras_path)
        model = training.load(str(keras_path), compile=False)
        onnx_path = work / "model.onnx"
        export.export_onnx(model, onnx_path)
        ctx.progress(0.6, None, "checking onnxruntime against Keras on sample inputs")
        diff = export.max_difference(model, onnx_path, export.sample_inputs(networks.input_size(model)))
        with open(onnx_path, "rb") as fh:
            key, _ = ctx.rt.blobs.put_stream(fh)
        return key, diff
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fail(session, deployment: Deployment, why: str, **values) -> None:
    """Record what only the check knows (the measured difference); the job's end settles the rest."""
    session.rollback()
    session.execute(update(Deployment).where(Deployment.id == deployment.id,
                                             Deployment.status == DeploymentStatus.building)
                    .values(status=DeploymentStatus.failed, error=why, **values))
    session.commit()
