"""Push rules: https://spec.matrix.org/latest/client-server-api/#push-rules-api"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from dendrite_lite.api.body import parse_body
from dendrite_lite.api.middleware import path_value
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.push.service import PushRules

BASE = "/_matrix/client/v3/pushrules"
RULE = BASE + "/global/{kind:str}/{rule_id:str}"


class EnabledBody(msgspec.Struct):
    enabled: bool


@get(BASE + "/")
async def get_push_rules(
    push_rules: NamedDependency[PushRules], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/"""
    return await push_rules.get_all(requester)


@get(BASE + "/global/")
async def get_push_rules_global(
    push_rules: NamedDependency[PushRules], requester: NamedDependency[Requester]
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/global/"""
    return await push_rules.get_global(requester)


@get(BASE + "/global/{kind:str}")
async def get_push_rules_of_kind(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
) -> list[dict[str, Any]]:
    """GET /_matrix/client/v3/pushrules/global/{kind}/ (as Synapse serves it)"""
    return await push_rules.get_kind(requester, kind)


@get(RULE)
async def get_push_rule(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    return await push_rules.get_rule(requester, kind, path_value(rule_id))


@put(RULE)
async def set_push_rule(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
    data: Any,
    before: Annotated[str | None, Parameter(query="before")] = None,
    after: Annotated[str | None, Parameter(query="after")] = None,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    await push_rules.put_rule(requester, kind, path_value(rule_id), data, before, after)
    return {}


@delete(RULE, status_code=200)
async def delete_push_rule(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    await push_rules.delete_rule(requester, kind, path_value(rule_id))
    return {}


@get(RULE + "/enabled")
async def is_push_rule_enabled(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
    return {"enabled": await push_rules.get_enabled(requester, kind, path_value(rule_id))}


@put(RULE + "/enabled")
async def set_push_rule_enabled(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
    body = parse_body(data, EnabledBody)
    await push_rules.set_enabled(requester, kind, path_value(rule_id), body.enabled)
    return {}


@get(RULE + "/actions")
async def get_push_rule_actions(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
    return {"actions": await push_rules.get_actions(requester, kind, path_value(rule_id))}


@put(RULE + "/actions")
async def set_push_rule_actions(
    push_rules: NamedDependency[PushRules],
    requester: NamedDependency[Requester],
    kind: FromPath[str],
    rule_id: FromPath[str],
    data: Any,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
    await push_rules.set_actions(requester, kind, path_value(rule_id), data)
    return {}


ROUTES = [
    get_push_rules,
    get_push_rules_global,
    get_push_rules_of_kind,
    get_push_rule,
    set_push_rule,
    delete_push_rule,
    is_push_rule_enabled,
    set_push_rule_enabled,
    get_push_rule_actions,
    set_push_rule_actions,
]
