"""One-time tokens for the links in emails: the link carries the token, the database only its SHA-256.

The website looks a followed link up by hashing the token it was given, so a copy of
web.verification_token (a backup, a report) never lets anyone log in.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

TOKEN_PURPOSES = frozenset({"set_password", "verify_email", "reverify"})

# Where the website takes each kind of link; the token goes in the query string.
LINK_PATHS = {
    "set_password": "/account/set-password",
    "verify_email": "/account/verify-email",
    "reverify": "/account/verify-email",
}


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token: what web.verification_token.token_hash holds."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token (256 bits of randomness, URL-safe) and its SHA-256 hex digest."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


# Tokens made in the database for a whole batch: 32 random bytes (two random UUIDs, 244 bits of randomness) as
# URL-safe base64 without padding, the shape of secrets.token_urlsafe(32). Only the SHA-256 hex is stored; the
# plain tokens come back once, for the links, and are never written anywhere.
_ISSUE_SQL = sa.text(
    """
WITH minted AS MATERIALIZED (
    SELECT u.user_id,
           translate(rtrim(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'), '='),
                     '+/', '-_') AS token
      FROM unnest(CAST(:user_ids AS bigint[])) AS u(user_id)
), stored AS (
    INSERT INTO web.verification_token (token_hash, user_id, purpose, created_at, expires_at)
    SELECT encode(sha256(convert_to(m.token, 'UTF8')), 'hex'), m.user_id, :purpose, now(),
           now() + CAST(:ttl_hours AS double precision) * interval '1 hour'
      FROM minted m
)
SELECT user_id, token FROM minted
"""
)


def issue_tokens(conn: Connection, user_ids: Sequence[int], purpose: str, ttl_hours: float) -> dict[int, str]:
    """Store a new token's hash for each user in one statement; the plain tokens by user, for links only.

    Runs in the caller's transaction, so the tokens exist exactly when the emails that carry them are queued.
    """
    if purpose not in TOKEN_PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {sorted(TOKEN_PURPOSES)}")
    if ttl_hours <= 0:
        raise ValueError("a token's ttl_hours must be positive")
    if not user_ids:
        return {}
    minted = conn.execute(
        _ISSUE_SQL, {"user_ids": [int(u) for u in user_ids], "purpose": purpose, "ttl_hours": ttl_hours}
    ).all()
    return {int(user_id): token for user_id, token in minted}


def issue_token(conn: Connection, user_id: int, purpose: str, ttl_hours: float) -> str:
    """Store a new token's hash for the user and return the plain token, to be put in a link only."""
    return issue_tokens(conn, [user_id], purpose, ttl_hours)[int(user_id)]


def token_link(site_url: str, purpose: str, token: str) -> str:
    """The link a person follows, e.g. https://shop.example.com/account/set-password?token=..."""
    if purpose not in LINK_PATHS:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return f"{site_url.rstrip('/')}{LINK_PATHS[purpose]}?token={quote(token, safe='')}"
