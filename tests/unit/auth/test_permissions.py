"""The permission table: roles, rules per endpoint, the closed default, public paths."""

from __future__ import annotations

from nova.auth.permissions import FALLBACK, PublicPaths, allowed, rule_for
from nova.core.auth import Permission, Role


def test_roles() -> None:
    assert all(allowed(Role.ADMIN, permission) for permission in Permission)
    assert allowed(Role.DEVELOPER, Permission.WRITE)
    assert not allowed(Role.DEVELOPER, Permission.KEYS)
    assert not allowed(Role.DEVELOPER, Permission.ADMIN)
    assert [p for p in Permission if allowed(Role.INVOKER, p)] == [Permission.INVOKE]
    assert not allowed(Role.VIEWER, Permission.WRITE)
    assert not allowed(Role.VIEWER, Permission.INVOKE)
    assert allowed(Role.VIEWER, Permission.READ)


def test_rules_name_the_function() -> None:
    assert rule_for("POST", "/functions/hello/invoke")[0].permission is Permission.INVOKE
    assert rule_for("POST", "/functions/hello:live/invoke")[1] == "hello"
    lam = rule_for("POST", "/2015-03-31/functions/arn:aws:lambda:r:1:function:hi:2/invocations")
    assert lam == (lam[0], "hi")
    assert lam[0].permission is Permission.INVOKE
    assert rule_for("GET", "/functions/hello/logs")[0].permission is Permission.READ
    assert rule_for("DELETE", "/functions/hello")[0].permission is Permission.WRITE
    assert rule_for("PUT", "/functions/hello/aliases/live")[1] == "hello"
    assert rule_for("GET", "/functions")[0].lists_functions
    assert rule_for("PUT", "/secrets/db")[0].permission is Permission.SECRETS_WRITE
    assert rule_for("POST", "/admin/master-key/rotate")[0].permission is Permission.ADMIN
    assert rule_for("POST", "/keys")[0].permission is Permission.KEYS


def test_an_unknown_route_needs_admin() -> None:
    assert rule_for("POST", "/something/new") == (FALLBACK, None)
    assert rule_for("PATCH", "/secrets")[0].permission is Permission.ADMIN


def test_public_paths_cover_what_is_below_them() -> None:
    public = PublicPaths(["/health", "/hooks/"])
    assert public.is_public("/health")
    assert public.is_public("/health/ready")
    assert public.is_public("/hooks/github")
    assert not public.is_public("/healthz")
    assert not public.is_public("/functions")
