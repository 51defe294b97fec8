"""The docker/ and ops/ files serve exactly the queues of services/queues.py, each pool with
`loopline worker <queue>`, and KEDA watches each queue's own Redis list.

No fixtures: these tests read files and run ops/scale.sh against a stand-in kubectl."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from api.cli import worker as worker_command
from services.queues import QUEUES, Queue, unacked_key

ROOT = Path(__file__).resolve().parents[2]
QUEUE_NAMES = {q.value for q in Queue}


# --- reading the files ---------------------------------------------------------------------------
def image_entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT (exec form), without the init process in front of loopline."""
    lines = [ln for ln in (ROOT / "docker/Dockerfile").read_text().splitlines() if ln.startswith("ENTRYPOINT")]
    assert len(lines) == 1, "one ENTRYPOINT in exec form"
    argv = json.loads(lines[0].removeprefix("ENTRYPOINT"))
    return argv[argv.index("--") + 1:] if "--" in argv else argv


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker/compose.yaml").read_text())


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "ops/k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def parsed_worker_queue(argv: list[str]) -> str:
    """Parse `loopline worker ...` arguments with the real CLI definition (nothing runs)."""
    assert argv[:2] == ["loopline", "worker"], argv
    ctx = worker_command.make_context("worker", list(argv[2:]))
    return ctx.params["queue"]


def worker_deployments() -> dict[str, dict]:
    """Every Deployment whose container runs `loopline worker`, by queue."""
    out = {}
    for name, dep in of_kind("Deployment").items():
        c = container(dep)
        assert "command" not in c, f"{name}: `command` would replace the image's loopline entry point"
        if c.get("args", [])[:1] == ["worker"]:
            queue = parsed_worker_queue(image_entrypoint() + c["args"])
            assert queue not in out, f"two Deployments serve {queue}"
            out[queue] = dep
    return out


# --- the image ---------------------------------------------------------------------------------
def test_image_entry_point_is_the_loopline_console_script():
    assert image_entrypoint() == ["loopline"]
    text = (ROOT / "docker/Dockerfile").read_text()
    assert re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.M), "the image runs as a non-root user"
    default = re.search(r"^ARG EXTRAS=(\S+)", text, re.M).group(1)
    assert default == "inference"


def test_requirements_script_expands_extras_like_pip():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pyreq", ROOT / "docker/pyproject_requirements.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pyproject = ROOT / "pyproject.toml"
    inference = mod.requirements(pyproject, ["inference"])
    everything = mod.requirements(pyproject, ["all"])
    assert any(r.startswith("onnxruntime") for r in inference)
    assert not any(r.startswith("tensorflow") for r in inference), "inference images never carry TensorFlow"
    assert any(r.startswith("tensorflow") for r in everything)
    assert set(inference) <= set(everything)
    assert not any(r.startswith("loopline") for r in everything), "self-references are expanded"
    with pytest.raises(SystemExit):
        mod.requirements(pyproject, ["no-such-extra"])


# --- docker/compose.yaml -----------------------------------------------------------------------
def test_compose_has_one_worker_service_per_queue_running_loopline_worker():
    services = compose()["services"]
    found = {}
    for name, svc in services.items():
        command = svc.get("command") or []
        if command[:1] == ["worker"]:
            assert "entrypoint" not in svc, name
            argv = image_entrypoint() + command
            assert argv == ["loopline", "worker", parsed_worker_queue(argv)], f"{name}: {argv}"
            found[argv[2]] = name
    assert set(found) == QUEUE_NAMES
    assert all(name == f"worker-{queue}" for queue, name in found.items())


def test_compose_services_share_data_and_wait_for_migrations():
    services = compose()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    loopline = [n for n, s in services.items() if str(s.get("image", "")).startswith("loopline")]
    assert {"api", "reaper", "migrate"} | {f"worker-{q}" for q in QUEUE_NAMES} <= set(loopline)
    for name in loopline:
        svc = services[name]
        env = svc["environment"]
        assert env["LOOPLINE_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert env["LOOPLINE_REDIS_URL"] == "redis://redis:6379/0", name
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts.get(env["LOOPLINE_DATA_DIR"]) == "loopline-data", f"{name}: blobs on the shared volume"
        if name != "migrate":
            assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert "/api/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert "noeviction" in services["redis"]["command"]


# --- ops/k8s -----------------------------------------------------------------------------------
def test_one_worker_deployment_per_queue():
    deployments = worker_deployments()
    assert set(deployments) == QUEUE_NAMES
    for queue, dep in deployments.items():
        assert dep["metadata"]["name"] == f"loopline-worker-{queue}"
        assert dep["spec"]["template"]["metadata"]["labels"]["loopline.io/queue"] == queue
        assert "replicas" not in dep["spec"], "KEDA owns the replica count"


def test_worker_pods_fit_their_queue_settings():
    for queue, dep in worker_deployments().items():
        spec, settings = dep["spec"]["template"]["spec"], QUEUES[Queue(queue)]
        args = container(dep)["args"]
        if settings.concurrency is None:
            # Celery's default is the node's core count, not the pod's.
            assert "--concurrency" in args, f"{queue}: prefork pool without --concurrency"
        if settings.time_limit:
            assert spec["terminationGracePeriodSeconds"] > settings.time_limit, queue
    training = container(worker_deployments()["training"])
    assert int(training["resources"]["limits"]["nvidia.com/gpu"]) == 1


def test_one_scaled_object_per_worker_deployment_on_its_own_list():
    deployments = worker_deployments()
    scaled = of_kind("ScaledObject")
    targets = {so["spec"]["scaleTargetRef"]["name"]: so for so in scaled.values()}
    assert set(targets) == {d["metadata"]["name"] for d in deployments.values()}
    assert len(targets) == len(scaled), "one ScaledObject per Deployment"

    config = of_kind("ConfigMap")["loopline-config"]["data"]
    redis_url = urlparse(config["LOOPLINE_REDIS_URL"])
    for queue, dep in deployments.items():
        so = targets[dep["metadata"]["name"]]["spec"]
        redis_triggers = [t for t in so["triggers"] if t["type"] == "redis"]
        assert len(redis_triggers) == 1, queue
        meta = redis_triggers[0]["metadata"]
        assert meta["listName"] == queue
        assert int(meta["listLength"]) >= 1
        # KEDA reads the address from the worker container: it must be there and be the app's Redis.
        env_source = so.get("envSourceContainerName", container(dep)["name"])
        assert env_source == container(dep)["name"]
        refs = {r["configMapRef"]["name"] for r in container(dep)["envFrom"] if "configMapRef" in r}
        assert "loopline-config" in refs
        assert config[meta["addressFromEnv"]] == f"{redis_url.hostname}:{redis_url.port}"
        assert meta["databaseIndex"] == (redis_url.path.strip("/") or "0")
        for t in so["triggers"]:
            # The CRD types trigger metadata as map[string]string: an unquoted 5 is rejected.
            assert all(isinstance(v, str) for v in t["metadata"].values()), (queue, t)
            if t["type"] == "prometheus":
                assert f'key="{unacked_key(Queue(queue))}"' in t["metadata"]["query"], queue
        assert 0 <= so["minReplicaCount"] <= so["maxReplicaCount"], queue
    assert targets["loopline-worker-inference"]["spec"]["minReplicaCount"] >= 1, "a warm pool for latency"
    assert targets["loopline-worker-training"]["spec"]["maxReplicaCount"] <= 4, "GPU budget"


def test_acks_late_queues_also_scale_on_messages_in_flight():
    """LLEN sees only waiting messages; without an in-flight trigger KEDA would scale a pool to
    zero under a running task and leave no consumer to redeliver a dead pod's messages."""
    by_target = {so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind("ScaledObject").values()}
    for queue in Queue:
        kinds = {t["type"] for t in by_target[f"loopline-worker-{queue.value}"]["spec"]["triggers"]}
        if QUEUES[queue].acks_late:
            assert "prometheus" in kinds, queue.value


def test_redis_exporter_watches_every_queue_and_in_flight_hash():
    docs = [d for d in yaml.safe_load_all((ROOT / "ops/monitoring/redis-exporter.yaml").read_text()) if d]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (flag,) = [a for a in container(dep)["args"] if a.startswith("-check-single-keys=")]
    keys = {item.split("=", 1)[1] for item in flag.split("=", 1)[1].split(",")}
    assert keys == QUEUE_NAMES | {unacked_key(q) for q in Queue}


def test_migration_job_runs_db_upgrade():
    (job,) = of_kind("Job").values()
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert image_entrypoint() + c["args"] == ["loopline", "db", "upgrade"]


# --- ops/scale.sh ------------------------------------------------------------------------------
SCALE = ROOT / "ops/scale.sh"


def scale_script_queues() -> set[str]:
    m = re.search(r"^QUEUES=\(([^)]*)\)", SCALE.read_text(), re.M)
    assert m, "ops/scale.sh declares QUEUES=(...)"
    return set(m.group(1).split())


def run_scale(*args: str) -> tuple[int, list[str]]:
    """Run ops/scale.sh with a kubectl that records its arguments and knows every ScaledObject."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp, "kubectl.log")
        fake = Path(tmp, "kubectl")
        fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        env = {**os.environ, "PATH": f"{tmp}:{os.environ['PATH']}", "LOOPLINE_NAMESPACE": "ns"}
        proc = subprocess.run(["bash", str(SCALE), *args], env=env, capture_output=True, text=True, timeout=30)
        return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_scale_script_accepts_exactly_the_queues():
    assert scale_script_queues() == QUEUE_NAMES
    candidates = QUEUE_NAMES | scale_script_queues() | {"gpu", "Inference", "inference ", "worker", ""}
    accepted = {name for name in candidates if run_scale(name, "2")[0] == 0}
    assert accepted == QUEUE_NAMES


def test_scale_script_scales_that_queues_deployment_and_pins_keda():
    for queue in QUEUE_NAMES:
        rc, calls = run_scale(queue, "3")
        assert rc == 0
        name = f"loopline-worker-{queue}"
        assert f"--namespace ns scale deployment {name} --replicas=3" in calls
        pin = f"--namespace ns annotate --overwrite scaledobject {name} autoscaling.keda.sh/paused-replicas=3"
        assert pin in calls
    rc, calls = run_scale("training", "auto")
    assert rc == 0
    unpin = "--namespace ns annotate scaledobject loopline-worker-training autoscaling.keda.sh/paused-replicas-"
    assert calls[-1] == unpin
    for bad in (("gpu", "1"), ("training", "-1"), ("training", "many"), ("training",)):
        rc, calls = run_scale(*bad)
        assert rc != 0 and calls == [], bad


# --- external validators, where installed --------------------------------------------------------
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_alert_rules_pass_their_unit_tests():
    proc = subprocess.run(["promtool", "test", "rules", "alerts_test.yaml"], cwd=ROOT / "ops/monitoring",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_validates():
    proc = subprocess.run(["docker-compose", "-f", "docker/compose.yaml", "config", "-q"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
