"""Does a set of RBAC rules allow a set of API calls, and nothing more?

Kubernetes authorizes a request by (verb, API group, resource[/subresource]) against a Role's
rules. These helpers answer the two questions the chart's Role must pass:

* :func:`uncovered_calls`: recorded calls no rule allows (the executor would get 403);
* :func:`unused_grants`: (group, resource, verb) triples the rules grant that no recorded call
  used (the Role grants more than the executor needs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The verbs the API server derives from HTTP requests to resources. HTTP methods (GET, POST) are
# not verbs: a GET is `get`, `list` or `watch` depending on the path and query.
RESOURCE_VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)

Rule = Mapping[str, Any]


@dataclasses.dataclass(frozen=True, order=True)
class ApiCall:
    """One authorized request: ``verb`` on ``api_group``/``resource`` (``subresource``)."""

    verb: str
    api_group: str
    resource: str
    subresource: str = ""

    @property
    def rbac_resource(self) -> str:
        """The resource as RBAC rules spell it: ``pods`` or ``pods/log``."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @classmethod
    def from_recorded(cls, item: Any) -> ApiCall:
        """Accepts a recorder's entry: an object with the four attributes, or a 3/4-tuple.

        The core group may come as ``""``, ``None`` or ``"core"``; a missing subresource as
        ``""`` or ``None``.
        """
        if all(hasattr(item, a) for a in ("verb", "api_group", "resource")):
            fields = (item.verb, item.api_group, item.resource, getattr(item, "subresource", ""))
        else:
            fields = tuple(item) + ("",) * (4 - len(tuple(item)))
        verb, group, resource, subresource = fields
        verb = str(verb)
        if verb not in RESOURCE_VERBS:
            raise ValueError(
                f"recorded verb {verb!r} is not a Kubernetes resource verb "
                f"({', '.join(sorted(RESOURCE_VERBS))}); the recorder must map HTTP methods "
                "to verbs (GET on a collection is list, with ?watch=true it is watch)"
            )
        group = "" if group in (None, "core") else str(group)
        return cls(verb, group, str(resource or ""), str(subresource or ""))


@dataclasses.dataclass(frozen=True, order=True)
class Grant:
    """One (API group, resource[/subresource], verb) a rule grants."""

    api_group: str
    resource: str
    verb: str


def _check_supported(rule: Rule) -> None:
    if rule.get("resourceNames") or rule.get("nonResourceURLs"):
        raise ValueError(
            f"rule {dict(rule)} uses resourceNames/nonResourceURLs, which this check does not "
            "model; the submitter Role should not need them"
        )


def _matches(pattern_list: Iterable[str], value: str) -> bool:
    return "*" in pattern_list or value in pattern_list


def _resource_matches(resources: Sequence[str], call: ApiCall) -> bool:
    if "*" in resources or call.rbac_resource in resources:
        return True
    # "*/log" grants the log subresource of every resource.
    return bool(call.subresource) and f"*/{call.subresource}" in resources


def is_allowed(rules: Sequence[Rule], call: ApiCall) -> bool:
    """Whether any rule allows ``call`` (wildcards included, as the API server treats them)."""
    for rule in rules:
        _check_supported(rule)
        if (
            _matches(rule.get("verbs", []), call.verb)
            and _matches(rule.get("apiGroups", []), call.api_group)
            and _resource_matches(rule.get("resources", []), call)
        ):
            return True
    return False


def grants(rules: Sequence[Rule]) -> set[Grant]:
    """Every (group, resource, verb) the rules grant; wildcards are refused.

    A wildcard grants verbs and resources that no finite set of recorded calls can show to be
    needed, so a least-privilege Role must not contain one.
    """
    found: set[Grant] = set()
    for rule in rules:
        _check_supported(rule)
        groups, resources, verbs = (rule.get(k, []) for k in ("apiGroups", "resources", "verbs"))
        for field, items in (("apiGroups", groups), ("resources", resources), ("verbs", verbs)):
            if any("*" in item for item in items):
                raise ValueError(f"rule {dict(rule)} has a wildcard in {field}")
        found.update(Grant(g, r, v) for g in groups for r in resources for v in verbs)
    return found


def resource_calls(calls: Iterable[ApiCall]) -> set[ApiCall]:
    """Calls on resources; discovery requests (/api, /apis: no resource) need no Role."""
    return {call for call in calls if call.resource}


def uncovered_calls(rules: Sequence[Rule], calls: Iterable[ApiCall]) -> list[ApiCall]:
    """Recorded resource calls that no rule allows, sorted."""
    return sorted(call for call in resource_calls(calls) if not is_allowed(rules, call))


def unused_grants(rules: Sequence[Rule], calls: Iterable[ApiCall]) -> list[Grant]:
    """Granted (group, resource, verb) triples that no recorded call used, sorted."""
    used = {Grant(c.api_group, c.rbac_resource, c.verb) for c in resource_calls(calls)}
    return sorted(grants(rules) - used)
