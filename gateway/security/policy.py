"""Who may use what: allow and deny patterns on canonical names, per principal, JWT subject, role or scope.

Patterns are shell-style (``ops/*``, ``hr/approve_leave``, ``fin/*``) and match the canonical name of a tool or
prompt (``<prefix>/<name>``) or of a resource (``<prefix>/<backend URI>``, so ``ops/*`` covers ``ops+ops://x`` as
well). A rule's ``principals`` name principals the configuration vouches for (API keys, the local stdio user;
``"*"`` is everyone), its ``subjects`` name subjects of the configured JWT issuer, so an IdP cannot mint a token
that a rule for an API-key principal of the same name takes for that principal. Every rule whose subject matches
the principal takes part: a matching deny pattern refuses, whatever any
rule allows; otherwise a matching allow pattern admits; otherwise the default decides. The default ``auto`` is
allow-all while authentication is off (a loopback gateway, or one started with ``--allow-unauthenticated``) and
deny-all once it is on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate
from functools import lru_cache

from gateway.catalogue.naming import split_uri
from gateway.config import PolicyConfig, RuleConfig
from gateway.principal import Principal

EVERYONE = "*"


class Policy:
    """Decides, for one principal and one canonical name, whether the call may go ahead."""

    def __init__(self, config: PolicyConfig, *, auth_enabled: bool) -> None:
        default = config.default if config.default != "auto" else ("deny" if auth_enabled else "allow")
        self.default_allows = default == "allow"
        self._rules = [_Rule(rule) for rule in config.rules]

    @property
    def allows_everything(self) -> bool:
        """No rule and an allowing default: lists and calls need no per-item check."""
        return self.default_allows and not self._rules

    def allows(self, principal: Principal, name: str) -> bool:
        return self.matcher(principal)(name)

    def matcher(self, principal: Principal) -> _Matcher:
        """The decision for one principal, compiled once (a list call checks every item against it)."""
        rules = [rule for rule in self._rules if rule.applies_to(principal)]
        return _Matcher(
            compile_patterns(tuple(p for rule in rules for p in rule.allow)),
            compile_patterns(tuple(p for rule in rules for p in rule.deny)),
            self.default_allows,
        )


class _Rule:
    def __init__(self, config: RuleConfig) -> None:
        self._principals = set(config.principals)
        self._subjects = set(config.subjects)
        self._roles = set(config.roles)
        self._scopes = set(config.scopes)
        self.allow = config.allow
        self.deny = config.deny

    def applies_to(self, principal: Principal) -> bool:
        names = self._subjects if principal.method == "jwt" else self._principals
        return (
            EVERYONE in self._principals
            or principal.name in names
            or (principal.method == "jwt" and EVERYONE in self._subjects)
            or bool(self._roles & principal.roles)
            or bool(self._scopes & principal.scopes)
        )


class _Matcher:
    def __init__(self, allow: re.Pattern[str] | None, deny: re.Pattern[str] | None, default: bool) -> None:
        self._allow = allow
        self._deny = deny
        self._default = default

    def __call__(self, name: str) -> bool:
        if self._deny is not None and self._deny.match(name):
            return False
        if self._allow is not None and self._allow.match(name):
            return True
        return self._default


@lru_cache(maxsize=256)
def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching a name any of the shell-style ``patterns`` matches whole (None for none)."""
    patterns = tuple(patterns)
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns)) if patterns else None


def resource_name(uri: str) -> str:
    """``ops+ops://x`` -> ``ops/ops://x``: the name patterns match a resource by, its prefix, then the URI as its
    backend knows it."""
    split = split_uri(uri)
    return f"{split[0]}/{split[1]}" if split else uri
