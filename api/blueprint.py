"""flask-smorest Blueprint that answers bad input with 400 (webargs' default is 422), and a pager."""

from __future__ import annotations

import flask_smorest
from sqlalchemy import Select, func, select
from webargs.flaskparser import FlaskParser

from api.extensions import db


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _Parser()


def page(query: Select, args: dict, dump) -> dict:
    """Run `query` for one page; total comes from a COUNT over the same filters."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(args["limit"]).offset(args["offset"])).all()
    return {"items": [dump(r) for r in rows], "total": total, "limit": args["limit"], "offset": args["offset"]}
