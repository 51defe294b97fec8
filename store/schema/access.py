"""Who may do what: users, hashed API tokens, projects and memberships with roles."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.schema.base import Base, str_enum, utcnow


class Role(str, enum.Enum):
    viewer = "viewer"
    annotator = "annotator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "annotator": 1, "admin": 2}[self.value]

    def allows(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the clear token is shown once, when it is made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="default")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    """A dashboard sign-in: a browser's cookie stands for the token it was opened with (revoking the token
    ends it) until it expires or is signed out. Only the cookie's SHA-256 is stored, as for tokens."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stats: Mapped[dict] = mapped_column(default=dict)
    stats_updated_at: Mapped[datetime | None]
    # every finished ingest starts a pre-annotation job with the active detector (services/preannotate.py)
    pre_annotate_after_ingest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pre_annotate_threshold: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")
