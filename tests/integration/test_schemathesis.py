"""schemathesis against the API's own OpenAPI document: every operation, examples generated from it (a
fixed seed), every check: no server error, status codes, content types, headers and bodies as
documented, schema-violating input refused and schema-valid input accepted.

The client is alice with a real token, on a throwaway project of hers: `project_id` in every path is
that project, so the examples reach the project's own rules instead of stopping at a 404 (the ids inside
it are generated and mostly missing). No worker runs here: the project keeps one queued job, so the
generated DELETE of the project is the 409 it would be, and every other operation keeps finding it.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import unique

EXAMPLES = 25
STATEFUL_SCENARIOS = 50

# schemathesis' defaults, and 413: a JSON body over LOOPLINE_MAX_JSON_BYTES is refused before it is read,
# whatever the schema says of its items (a document states no byte sizes). (A 5xx is `not_a_server_error`'s.)
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

# Rules the server checks that a JSON Schema cannot state: there a schema-valid request may be a 400
# (which names the field), and `positive_data_acceptance` allows it for these operations only.
SEMANTIC_400 = {
    ("POST", "/api/projects/{project_id}/label-maps"): "class ids must be classes of the project",
    ("PATCH", "/api/projects/{project_id}/label-maps/{map_id}"): "class ids must be classes of the project",
    ("POST", "/api/projects/{project_id}/images"): "URLs the fetcher takes (http(s), a host, no credentials)",
    ("POST", "/api/projects/{project_id}/images/{image_id}/annotations"): "human boxes carry no score or deployment",
    ("PUT", "/api/projects/{project_id}/images/{image_id}/annotations"): "human boxes carry no score or deployment",
    ("PUT", "/api/projects/{project_id}/annotations/{annotation_id}/review"): "a valid verdict takes no correction",
    ("POST", "/api/projects/{project_id}/imports/coco"): "the file is a COCO detection document",
    ("POST", "/api/datasets"): "a registered handler (plugins add them), its options, a map of the project that "
                               "selects images",
    ("POST", "/api/projects/{project_id}/checkpoints"): "a label map of the project; an uploaded file is a .keras "
                                                        "model that fits",
    ("POST", "/api/projects/{project_id}/checkpoints/{checkpoint_id}/train"): "a dataset of the project",
    ("POST", "/api/projects/{project_id}/deployments"): "a checkpoint of the project",
    ("GET", "/api/projects/{project_id}/exports/coco"): "a label map of the project",
    ("POST", "/api/pipelines/{name}/runs"): "URLs the fetcher takes, stages that fit together",
    ("POST", "/api/projects/{project_id}/label-studio/setup"): "a labeling config (XML) with a control",
    ("POST", "/api/projects/{project_id}/label-studio/predict"): "a labeling config, tasks naming an image",
    ("POST", "/api/projects/{project_id}/label-studio/webhook"): "Label Studio's event: its linked project, a task "
                                                                  "naming an image, rectangles of the project's classes",
    ("PUT", "/api/projects/{project_id}/label-studio/connection"): "an http(s) origin without credentials",
    ("PUT", "/api/projects/{project_id}/label-studio/training"): "a checkpoint, label map and handler of the project",
    ("POST", "/api/jobs"): "the params of the kind; kinds with their own resource are submitted there",
    ("POST", "/api/jobs/batch"): "the same, for each job",
    ("POST", "/api/projects/{project_id}/evaluations"): "one model (checkpoint or deployment) and one selection",
    ("POST", "/api/projects/{project_id}/pre-annotations"): "exactly one selection (image ids, an ingest job, or "
                                                           "the unannotated images)",
}


@pytest.fixture(autouse=True)
def _node_id(request):
    # schemathesis 4.32 renames each operation's subtest through `node._nodeid`, which pytest 9 dropped
    request.node._nodeid = request.node.nodeid


def _throwaway(alice) -> int:
    """A new project of alice's that keeps one queued job (no worker runs here): deleting it is a 409."""
    res = alice.post("/api/projects", json={"name": unique("schemathesis")})
    assert res.status_code == 201, res.get_json()
    pid = res.get_json()["id"]
    assert alice.post("/api/jobs", json={"kind": "probe", "queue": "training", "project_id": pid}).status_code == 202
    return pid


@pytest.fixture()
def throwaway_project(alice):
    return _throwaway(alice)


def _config(token: str, project_id: int | None, *, skip_checks: tuple[str, ...] = (), **extra) -> SchemathesisConfig:
    auth = {"Authorization": f"Bearer {token}"}
    operations = [{"include-name": f"{method} {path}", "checks": {
        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}}} for method, path in SEMANTIC_400]
    top = {k: extra.pop(k) for k in ("seed",) if k in extra}
    return SchemathesisConfig.from_dict({
        **top,
        "headers": auth,
        "parameters": {"path.project_id": project_id} if project_id is not None else {},
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {"expected-statuses": REFUSED},
            **{name: {"enabled": False} for name in skip_checks},
        },
        "operations": operations,
        **extra,
    })


def _load(app, token: str, config: SchemathesisConfig):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config,
                                          headers={"Authorization": f"Bearer {token}"})


@pytest.fixture()
def api_schema(app, tokens, throwaway_project):
    return _load(app, tokens["alice"], _config(tokens["alice"], throwaway_project))


schema = schemathesis.pytest.from_fixture("api_schema")


CALLS: dict[str, int] = {}  # examples sent, by operation


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case):
    CALLS[case.operation.label] = CALLS.get(case.operation.label, 0) + 1
    case.call_and_validate()


def test_the_allowances_are_the_listed_operations_only(api_schema):
    allowed = set()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        checks = api_schema.config.checks_config_for(operation=operation)
        if "400" in checks.positive_data_acceptance.expected_statuses:
            allowed.add(operation.label)
    assert allowed == {f"{method} {path}" for method, path in SEMANTIC_400}


def test_every_operation_was_exercised(alice):
    if not CALLS:
        pytest.skip("test_api did not run")
    doc = alice.get("/api/openapi.json").get_json()
    documented = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert set(CALLS) == documented  # none was skipped (an operation without inputs has few examples to send)
    print(f"\nschemathesis: {len(CALLS)} operations, {sum(CALLS.values())} examples")


def test_stateful(app, tokens, throwaway_project):
    """schemathesis' stateful phase, run by its engine as `schemathesis run` does: scenarios of calls that
    feed the ids of earlier answers (links it infers from the document) to the next, on the throwaway
    project, with every check. The engine rather than a bare Hypothesis state machine: the catalog keeps
    what a scenario wrote (a class name is taken the second time), so a replayed scenario can answer
    otherwise, which the engine takes as the end of the run instead of an error."""
    from schemathesis.engine import Status
    from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished
    from schemathesis.engine.run import PhaseName

    # ignored_auth is left to test_api and tests/integration/test_auth.py here: in the stateful phase
    # schemathesis 4.32.5 re-sends its unauthenticated probe through the WSGI transport with a
    # `max_redirects` argument Werkzeug's test client refuses, whenever a scenario reaches such a link
    # (which depends on what earlier tests left in the catalog)
    # No pinned project id here: a scenario's project is the one its first call made (the links carry its
    # id), else ensure_resource_availability sees a pinned id where the created one belongs.
    config = _config(tokens["alice"], None, seed=1, skip_checks=("ignored_auth",),
                     generation={"max-examples": STATEFUL_SCENARIOS, "deterministic": True},
                     phases={"examples": {"enabled": False}, "coverage": {"enabled": False},
                             "fuzzing": {"enabled": False}, "stateful": {"enabled": True, "max-steps": 10}})
    seen = list(schemathesis.engine.from_schema(_load(app, tokens["alice"], config)).execute())
    errors = [e for e in seen if isinstance(e, (NonFatalError, FatalError))]
    assert isinstance(seen[-1], EngineFinished) and not errors, errors
    scenarios = [e for e in seen if isinstance(e, ScenarioFinished) and e.phase == PhaseName.STATEFUL_TESTING]
    failed = [e.recorder for e in scenarios if e.status is Status.FAILURE]
    assert not seen[-1].failures and not failed, [  # each failed check and the call it failed on
        (c.name, r.interactions[case_id].request.method if case_id in r.interactions else None,
         r.interactions[case_id].request.uri if case_id in r.interactions else None, str(c.failure_info)[:300])
        for r in failed for case_id, checks in r.checks.items() for c in checks if c.status is Status.FAILURE]
    calls = sum(len(e.recorder.interactions) for e in scenarios)
    assert calls >= 10, (len(scenarios), calls)  # the phase ran
    print(f"\nschemathesis stateful: {len(scenarios)} scenarios, {calls} calls")
