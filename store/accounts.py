"""Users and API tokens. A token is shown once; only its SHA-256 is stored (tokens are random,
high-entropy strings, so a fast hash is the right tool, unlike passwords)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.schema import ApiToken, User, WebSession
from store.schema.base import utcnow

TOKEN_PREFIX = "ll_"
SESSION_PREFIX = "ls_"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: what the routes need of its user (plain values, no ORM row), and its token."""

    id: int
    name: str
    is_superuser: bool
    token_id: int | None = None
    token_last_used_at: datetime | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str, *, superuser: bool = False) -> User:
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ValueError(f"user {name!r} already exists")
    user = User(name=name, is_superuser=superuser)
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user: User, name: str = "default") -> str:
    """Create a token for `user` and return it in clear (the only time it exists in clear)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:10]))
    session.flush()
    return token


def caller_for_user(session: Session, user_id: int) -> Caller | None:
    """The caller a Socket.IO connection authenticated as (plain columns, as for tokens)."""
    row = session.execute(select(User.id, User.name, User.is_superuser).where(User.id == user_id)).first()
    return None if row is None else Caller(*row)


def caller_for_token(session: Session, token: str) -> Caller | None:
    """The caller a live token stands for, in one query of plain columns (every request asks it)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = session.execute(
        select(User.id, User.name, User.is_superuser, ApiToken.id, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).first()
    return None if row is None else Caller(*row)


@dataclass(frozen=True)
class SignIn:
    """A live dashboard session: its caller, its row id (for sign-out) and its CSRF token."""

    caller: Caller
    session_id: int
    csrf_token: str


def open_web_session(session: Session, caller: Caller, ttl: timedelta) -> tuple[str, SignIn]:
    """A new session for the token `caller` authenticated with; returns the cookie's value (in clear, once).
    Sessions that expired are removed here: signing in is rare, and nothing else reads them."""
    session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = WebSession(token_id=caller.token_id, secret_hash=hash_token(secret), csrf_token=secrets.token_urlsafe(32),
                     expires_at=utcnow() + ttl)
    session.add(row)
    session.flush()
    return secret, SignIn(caller, row.id, row.csrf_token)


def sign_in_for_cookie(session: Session, secret: str | None) -> SignIn | None:
    """The session a cookie stands for, while it has not expired and its token is not revoked."""
    if not secret or not secret.startswith(SESSION_PREFIX) or len(secret) > 128:
        return None
    row = session.execute(
        select(User.id, User.name, User.is_superuser, ApiToken.id, ApiToken.last_used_at, WebSession.id,
               WebSession.csrf_token)
        .join(ApiToken, ApiToken.user_id == User.id)
        .join(WebSession, WebSession.token_id == ApiToken.id)
        .where(WebSession.secret_hash == hash_token(secret), WebSession.expires_at > utcnow(),
               ApiToken.revoked_at.is_(None))
    ).first()
    return None if row is None else SignIn(Caller(*row[:5]), row[5], row[6])
