"""Who calls ``/api/v1``: HTTP Basic (checked against the auth manager's users) or a Bearer JWT.

Authorization is the same check ``/api/v2`` makes (``is_authorized_dag`` with the ``RUN`` entity).
Airflow is imported inside the functions, so loading the plugin stays cheap in every process.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from taxiflow.doors.api_v1.shapes import ApiV1Error, unauthenticated, unavailable

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser


@dataclass(frozen=True)
class BasicCredentials:
    """``Authorization: Basic`` credentials."""

    username: str
    password: str


@dataclass(frozen=True)
class BearerToken:
    """``Authorization: Bearer`` token."""

    token: str


def parse_authorization(header: str | None) -> BasicCredentials | BearerToken | None:
    """The credentials in an ``Authorization`` header; None if absent, a 401 if unusable."""
    if not header or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise unauthenticated("Empty Bearer token")
        return BearerToken(value)
    if scheme.lower() != "basic":
        raise unauthenticated(f"Unsupported authorization scheme {scheme!r}: use Basic or Bearer")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthenticated("Malformed Basic credentials: expected base64 of username:password") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise unauthenticated("Malformed Basic credentials: expected base64 of username:password")
    return BasicCredentials(username, password)


def password_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison, also when the user has no password."""
    return hmac.compare_digest((expected or "").encode(), given.encode()) and expected is not None


def _auth_manager() -> BaseAuthManager:
    """The api-server's auth manager."""
    # Inside a plugin sub-app request.app.state is the sub-app's: use the global one.
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def check_password(username: str, password: str) -> BaseUser | None:
    """The user these credentials identify for the configured auth manager, or None."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.configuration import conf

    manager = _auth_manager()
    if isinstance(manager, SimpleAuthManager):
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        if conf.getboolean("core", "simple_auth_manager_all_admins"):
            return SimpleAuthManagerUser(username="Anonymous", role="ADMIN")
        passwords = SimpleAuthManager.get_passwords()
        for user in SimpleAuthManager.get_users():
            if user.username == username and password_matches(passwords.get(username), password):
                return user
        return None

    fab_manager = _fab_auth_manager_class()
    if fab_manager is not None and isinstance(manager, fab_manager):
        return _check_fab_password(manager, username, password)

    raise unauthenticated(
        f"HTTP Basic auth is not supported with {type(manager).__name__}: send "
        "'Authorization: Bearer <token>' with a token from POST /auth/token"
    )


def _fab_auth_manager_class() -> type | None:
    try:
        from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    except ImportError:
        return None
    return FabAuthManager


def _check_fab_password(manager: Any, username: str, password: str) -> BaseUser | None:
    """FAB's own login (DB users, LDAP if configured), as its ``POST /auth/token`` does it.

    ``FabAuthManager.get_fastapi_app`` creates the manager's Flask app when the api-server starts
    (before any request), so it is used as it is: no lock, no lazy creation of our own.
    """
    flask_app = manager.flask_app
    if flask_app is None:
        raise unavailable()
    with flask_app.app_context():
        try:
            user = manager.create_token(headers={}, body={"username": username, "password": password})
        except ValueError:
            return None
        if user is None:
            return None
        # The same detached, re-checked user a Bearer token for this account would give.
        return manager.deserialize_user(manager.serialize_user(user))


async def authenticate(request: Request) -> BaseUser:
    """The caller, from HTTP Basic or a Bearer JWT; ApiV1Error(401) otherwise."""
    credentials = parse_authorization(request.headers.get("authorization"))
    if credentials is None:
        raise unauthenticated("No credentials: use HTTP Basic auth (curl -u user:password) or a Bearer token")
    if isinstance(credentials, BasicCredentials):
        user = await run_in_threadpool(check_password, credentials.username, credentials.password)
        if user is None:
            raise unauthenticated("Invalid username or password")
        return user
    from jwt import InvalidTokenError

    try:
        return await _auth_manager().get_user_from_token(credentials.token)
    except InvalidTokenError as err:  # ExpiredSignatureError is one too
        raise unauthenticated(f"Invalid or expired token: {err}") from None


def authorize_runs(user: BaseUser, method: str, dag_id: str) -> None:
    """The access check ``/api/v2`` makes for a DAG's runs; ApiV1Error(403) if refused."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    allowed = _auth_manager().is_authorized_dag(
        method=method,  # type: ignore[arg-type]
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        action = "trigger" if method == "POST" else "read the runs of"
        raise ApiV1Error(403, f"User {user.get_name()!r} is not allowed to {action} DAG {dag_id!r}")
