"""Dashboard/API users: roles viewer < analyst < admin, argon2id password hashes, API sessions."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from boothguard.collector import db
from boothguard.collector.schema import api_sessions, users
from boothguard.collector.store import audit, token_hash
from boothguard.errors import BoothguardError

ROLES = ("viewer", "analyst", "admin")
ROLE_RANK = {role: i for i, role in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
_hasher = PasswordHasher()  # argon2id, 64 MiB, t=3: memory-hard by default
# Checked against when the user does not exist, so a wrong name costs as much time as a wrong password.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


class UserError(BoothguardError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def add_user(engine: Engine, name: str, role: str, password: str, *, now: float, actor: str = "cli") -> None:
    if not NAME_RE.match(name):
        raise UserError(f"bad user name {name!r}: letters, digits and _ . @ - only, at most 128")
    if role not in ROLE_RANK:
        raise UserError(f"bad role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("password too short: at least 8 characters")
    hashed = _hasher.hash(password)
    try:
        with db.write(engine) as conn:
            conn.execute(sa.insert(users).values(name=name, role=role, password_hash=hashed, created_at=now))
            audit(conn, actor, "user.add", name, {"role": role}, now=now)
    except IntegrityError:
        raise UserError(f"user {name!r} already exists") from None


def check_password(engine: Engine, name: str, password: str) -> Principal | None:
    with db.read(engine) as conn:
        row = conn.execute(
            sa.select(users.c.role, users.c.password_hash).where(
                users.c.name == name, users.c.disabled.is_(False)
            )
        ).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    return Principal(name, row.role) if row else None


def create_session(engine: Engine, principal: Principal, now: float, ttl: float) -> tuple[str, float]:
    token = secrets.token_urlsafe(32)
    with db.write(engine) as conn:
        conn.execute(sa.delete(api_sessions).where(api_sessions.c.expires_at <= now))
        conn.execute(
            sa.insert(api_sessions).values(
                token_hash=token_hash(token), user=principal.name, created_at=now, expires_at=now + ttl
            )
        )
        audit(conn, principal.name, "session.create", principal.name, {}, now=now)
    return token, now + ttl


def session_principal(engine: Engine, token: str, now: float) -> Principal | None:
    with db.read(engine) as conn:
        row = conn.execute(
            sa.select(users.c.name, users.c.role)
            .select_from(api_sessions.join(users, api_sessions.c.user == users.c.name))
            .where(
                api_sessions.c.token_hash == token_hash(token),
                api_sessions.c.expires_at > now,
                users.c.disabled.is_(False),
            )
        ).first()
    return Principal(row.name, row.role) if row else None
