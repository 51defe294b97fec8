"""flask-smorest Blueprint that answers bad input with 400 (webargs' default is 422), and the helpers
every resource's views share: a pager and the lookups of a project's rows."""

from __future__ import annotations

import flask_smorest
from sqlalchemy import Select, func, select
from webargs.flaskparser import FlaskParser

from api.errors import ApiError
from api.extensions import db
from api.inputs import CHECKED


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """The body `api.inputs` parsed and checked before the view (nesting, Unicode, 64-bit integers)."""
        if CHECKED in req.environ:
            return req.environ[CHECKED]
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _Parser()


def page(query: Select, args: dict, dump=None, *, scalars: bool = True) -> dict:
    """Run `query` for one page; total comes from a COUNT over the same filters. Without `dump` the
    items are the rows themselves (the page's schema serialises them). With `scalars=False` each item
    handed to `dump` is a row of several columns."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    window = query.limit(args["limit"]).offset(args["offset"])
    rows = db.session.scalars(window).all() if scalars else db.session.execute(window).all()
    items = rows if dump is None else [dump(r) for r in rows]
    return {"items": items, "total": total, "limit": args["limit"], "offset": args["offset"]}


class Extended:
    """A row with a few more attributes for its schema to dump: a checkpoint with its lineage, a
    deployment with its job. Everything else is read from the row."""

    def __init__(self, row, **extra):
        self._row = row
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self._row, name)


def referenced(model, row_id, project_id: int, what: str, field: str):
    """The `model` row a request's body or query names in `field`, or 400 naming the field: the route's own
    resource exists, the input points at nothing (a 404 would say the route's resource is missing)."""
    row = db.session.get(model, row_id)
    if row is None or row.project_id != project_id:
        raise ApiError(400, f"{what} {row_id} not found in project {project_id}",
                       fields={field: [f"no such {what} in project {project_id}"]})
    return row


def in_project(model, row_id, project_id: int, what: str):
    """The `model` row `row_id` of project `project_id`, or 404 (a row of another project is not shown)."""
    row = db.session.get(model, row_id)
    if row is None or row.project_id != project_id:
        raise ApiError(404, f"{what} {row_id} not found in project {project_id}")
    return row
