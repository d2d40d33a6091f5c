"""The push rules API against the real server: the default ruleset, user rules with
before/after, enabled and actions, m.push_rules in /sync, and the spec's errors.
matrix-nio sets rules and reads m.push_rules the way a client does; raw httpx checks the
exact JSON and bad input."""

from __future__ import annotations

from typing import Any

import httpx
from nio import (
    AsyncClient,
    PushEventMatch,
    PushNotify,
    PushRuleKind,
    PushRulesEvent,
    PushSetTweak,
    SetPushRuleResponse,
    SyncResponse,
)

from tests.e2e import test_sync as shared
from tests.e2e._rooms_server import RoomsClient, new_client, q
from tests.e2e.test_sync import NewNio, ok, sync

opened = shared.opened
new_nio = shared.new_nio

GLOBAL = "/pushrules/global"


def rule_path(kind: str, rule_id: str, attr: str = "") -> str:
    return f"{GLOBAL}/{kind}/{q(rule_id)}" + (f"/{attr}" if attr else "")


def ids(client: RoomsClient, kind: str) -> list[str]:
    return [r["rule_id"] for r in client.call("GET", "/pushrules/")["global"][kind]]


def push_rules_in(body: dict[str, Any]) -> dict[str, Any] | None:
    for event in body["account_data"]["events"]:
        if event["type"] == "m.push_rules":
            content: dict[str, Any] = event["content"]
            return content
    return None


def test_default_ruleset(http: httpx.Client) -> None:
    alice = new_client(http, "push")
    everything = alice.call("GET", "/pushrules/")
    assert set(everything) == {"global"}
    ruleset = everything["global"]
    assert ruleset == alice.call("GET", f"{GLOBAL}/")
    assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert ruleset["content"] == ruleset["room"] == ruleset["sender"] == []
    assert [r["rule_id"] for r in ruleset["override"]][:3] == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
    ]
    assert [r["rule_id"] for r in ruleset["underride"]] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]
    invite = alice.call("GET", rule_path("override", ".m.rule.invite_for_me"))
    assert invite["conditions"][2] == {
        "kind": "event_match",
        "key": "state_key",
        "pattern": alice.user_id,
    }
    master = alice.call("GET", rule_path("override", ".m.rule.master"))
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "actions": [],
        "conditions": [],
    }
    assert alice.call("GET", rule_path("override", ".m.rule.master", "enabled")) == {
        "enabled": False
    }
    assert alice.call("GET", rule_path("underride", ".m.rule.call", "actions")) == {
        "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]
    }
    assert next(r["rule_id"] for r in alice.call("GET", f"{GLOBAL}/underride/")) == ".m.rule.call"


def test_user_rules_before_and_after(http: httpx.Client) -> None:
    alice = new_client(http, "push")
    for name in ("a", "b", "c"):
        alice.call("PUT", rule_path("content", name), json={"pattern": name, "actions": ["notify"]})
    # A new rule without before/after is the most important of its kind.
    assert ids(alice, "content") == ["c", "b", "a"]
    alice.call(
        "PUT",
        rule_path("content", "d"),
        params={"before": "a"},
        json={"pattern": "d", "actions": []},
    )
    assert ids(alice, "content") == ["c", "b", "d", "a"]
    alice.call(
        "PUT",
        rule_path("content", "e"),
        params={"after": "c"},
        json={"pattern": "e", "actions": []},
    )
    assert ids(alice, "content") == ["c", "e", "b", "d", "a"]
    # Moving an existing rule; with both, `before` decides.
    alice.call(
        "PUT",
        rule_path("content", "c"),
        params={"before": "a", "after": "e"},
        json={"pattern": "cc", "actions": ["notify"]},
    )
    assert ids(alice, "content") == ["e", "b", "d", "c", "a"]
    # An update without before/after keeps its place and its enabled state.
    alice.call("PUT", rule_path("content", "b", "enabled"), json={"enabled": False})
    alice.call("PUT", rule_path("content", "b"), json={"pattern": "bb", "actions": []})
    assert ids(alice, "content") == ["e", "b", "d", "c", "a"]
    assert alice.call("GET", rule_path("content", "b")) == {
        "rule_id": "b",
        "default": False,
        "enabled": False,
        "actions": [],
        "pattern": "bb",
    }
    alice.call("DELETE", rule_path("content", "d"))
    assert ids(alice, "content") == ["e", "b", "c", "a"]
    alice.call("GET", rule_path("content", "d"), 404, "M_NOT_FOUND")
    # User override rules sit between .m.rule.master and the other defaults.
    alice.call("PUT", rule_path("override", "mine"), json={"actions": [], "conditions": []})
    assert ids(alice, "override")[:3] == [".m.rule.master", "mine", ".m.rule.suppress_notices"]
    # Room and sender rules.
    room = alice.create_room()
    alice.call("PUT", rule_path("room", room), json={"actions": []})
    alice.call("PUT", rule_path("sender", "@spam:localhost"), json={"actions": []})
    ruleset = alice.call("GET", "/pushrules/")["global"]
    assert ruleset["room"] == [{"rule_id": room, "default": False, "enabled": True, "actions": []}]
    assert ruleset["sender"][0]["rule_id"] == "@spam:localhost"


def test_enabled_and_actions_of_default_and_user_rules(http: httpx.Client) -> None:
    alice = new_client(http, "push")
    alice.call("PUT", rule_path("override", ".m.rule.master", "enabled"), json={"enabled": True})
    assert alice.call("GET", rule_path("override", ".m.rule.master", "enabled")) == {
        "enabled": True
    }
    loud = ["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "highlight"}]
    alice.call("PUT", rule_path("underride", ".m.rule.message", "actions"), json={"actions": loud})
    message = alice.call("GET", rule_path("underride", ".m.rule.message"))
    assert message["actions"] == loud and message["default"] is True
    # Historical actions are stripped.
    alice.call(
        "PUT", rule_path("underride", ".m.rule.call", "actions"), json={"actions": ["dont_notify"]}
    )
    assert alice.call("GET", rule_path("underride", ".m.rule.call", "actions")) == {"actions": []}
    alice.call("PUT", rule_path("override", "x"), json={"actions": ["notify"], "conditions": []})
    alice.call("PUT", rule_path("override", "x", "actions"), json={"actions": []})
    alice.call("PUT", rule_path("override", "x", "enabled"), json={"enabled": False})
    assert alice.call("GET", rule_path("override", "x")) == {
        "rule_id": "x",
        "default": False,
        "enabled": False,
        "actions": [],
        "conditions": [],
    }


def test_bad_input(http: httpx.Client) -> None:
    alice = new_client(http, "push")
    notify = {"actions": ["notify"], "conditions": []}
    # Unknown kinds.
    alice.call("GET", rule_path("everything", "x"), 400, "M_INVALID_PARAM")
    alice.call("PUT", rule_path("everything", "x"), 400, "M_INVALID_PARAM", json=notify)
    alice.call("DELETE", rule_path("everything", "x"), 400, "M_INVALID_PARAM")
    alice.call(
        "PUT",
        rule_path("everything", "x", "enabled"),
        400,
        "M_INVALID_PARAM",
        json={"enabled": True},
    )
    # Rule IDs: server-default ('.'), slashes, wrong shapes for room and sender rules.
    alice.call("PUT", rule_path("override", ".m.rule.master"), 400, "M_INVALID_PARAM", json=notify)
    alice.call("PUT", rule_path("override", ".m.custom"), 400, "M_INVALID_PARAM", json=notify)
    alice.call("PUT", rule_path("override", "a/b"), 400, "M_INVALID_PARAM", json=notify)
    alice.call("PUT", rule_path("override", "a\\b"), 400, "M_INVALID_PARAM", json=notify)
    alice.call("PUT", rule_path("room", "lobby"), 400, "M_INVALID_PARAM", json={"actions": []})
    alice.call("PUT", rule_path("sender", "bob"), 400, "M_INVALID_PARAM", json={"actions": []})
    # before/after: unknown rules ("before/after rule not found", 400 M_UNKNOWN in the
    # spec's example), server-default rules.
    body = alice.call(
        "PUT", rule_path("override", "x"), 400, "M_UNKNOWN", params={"before": "nope"}, json=notify
    )
    assert "nope" in body["error"]
    alice.call(
        "PUT", rule_path("override", "x"), 400, "M_UNKNOWN", params={"after": "nope"}, json=notify
    )
    alice.call(
        "PUT",
        rule_path("override", "x"),
        400,
        "M_INVALID_PARAM",
        params={"after": ".m.rule.master"},
        json=notify,
    )
    alice.call("GET", rule_path("override", "x"), 404, "M_NOT_FOUND")  # nothing was created
    # Bodies: actions and conditions.
    for bad in (
        {},
        {"actions": "notify"},
        {"actions": ["shout"]},
        {"actions": [{"set_tweak": "highlight", "value": "yes"}]},
        {"actions": [], "conditions": {}},
        {"actions": [], "conditions": [{"key": "type", "pattern": "x"}]},
        {"actions": [], "conditions": [{"kind": "event_match", "key": "type"}]},
        {"actions": [], "conditions": [{"kind": "room_member_count", "is": "lots"}]},
        {"actions": [], "conditions": [{"kind": "event_property_is", "key": "x", "value": 1.5}]},
    ):
        alice.call("PUT", rule_path("override", "x"), 400, "M_BAD_JSON", json=bad)
    alice.call("PUT", rule_path("content", "x"), 400, "M_BAD_JSON", json={"actions": []})
    alice.call(
        "PUT", rule_path("content", "x"), 400, "M_BAD_JSON", json={"actions": [], "pattern": 5}
    )
    alice.call("PUT", rule_path("override", "x"), 400, "M_NOT_JSON", content=b"{nope")
    alice.call(
        "PUT",
        rule_path("override", ".m.rule.master", "enabled"),
        400,
        "M_BAD_JSON",
        json={"enabled": "yes"},
    )
    alice.call(
        "PUT",
        rule_path("override", ".m.rule.master", "actions"),
        400,
        "M_BAD_JSON",
        json={"actions": ["x"]},
    )
    alice.call(
        "PUT", rule_path("override", ".m.rule.master", "actions"), 400, "M_BAD_JSON", json={}
    )
    # Missing rules; server-default rules cannot be deleted; kind and ID must agree.
    alice.call("GET", rule_path("override", "missing"), 404, "M_NOT_FOUND")
    alice.call("GET", rule_path("override", "missing", "enabled"), 404, "M_NOT_FOUND")
    alice.call("GET", rule_path("override", "missing", "actions"), 404, "M_NOT_FOUND")
    alice.call(
        "PUT",
        rule_path("override", "missing", "enabled"),
        404,
        "M_NOT_FOUND",
        json={"enabled": True},
    )
    alice.call(
        "PUT", rule_path("override", "missing", "actions"), 404, "M_NOT_FOUND", json={"actions": []}
    )
    alice.call("DELETE", rule_path("override", "missing"), 404, "M_NOT_FOUND")
    alice.call("DELETE", rule_path("override", ".m.rule.master"), 400, "M_INVALID_PARAM")
    alice.call("GET", rule_path("underride", ".m.rule.master"), 404, "M_NOT_FOUND")
    # The account data API may not write them.
    alice.call(
        "PUT",
        f"/user/{q(alice.user_id)}/account_data/m.push_rules",
        405,
        "M_BAD_JSON",
        json={"global": {}},
    )
    # Without a token.
    expect_401 = http.get("/_matrix/client/v3/pushrules/")
    assert expect_401.status_code == 401


def test_changes_reach_sync_as_m_push_rules(http: httpx.Client) -> None:
    alice = new_client(http, "push")
    first = sync(alice)
    # Never changed: the defaults, in the initial sync and from the account data API.
    initial = push_rules_in(first)
    assert initial is not None
    assert initial["global"] == alice.call("GET", "/pushrules/")["global"]
    assert alice.call("GET", f"/user/{q(alice.user_id)}/account_data/m.push_rules") == initial
    assert push_rules_in(sync(alice, first["next_batch"])) is None  # nothing new
    alice.call("PUT", rule_path("content", "tea"), json={"pattern": "tea", "actions": ["notify"]})
    changed = sync(alice, first["next_batch"])
    content = push_rules_in(changed)
    assert content is not None
    assert content["global"]["content"][0]["rule_id"] == "tea"
    assert content == alice.call("GET", f"/user/{q(alice.user_id)}/account_data/m.push_rules")
    alice.call("PUT", rule_path("override", ".m.rule.master", "enabled"), json={"enabled": True})
    later = sync(alice, changed["next_batch"])
    content = push_rules_in(later)
    assert content is not None and content["global"]["override"][0]["enabled"] is True
    # A filter on account data types applies.
    filtered = sync(alice, filter={"account_data": {"not_types": ["m.push_rules"]}})
    assert push_rules_in(filtered) is None


async def test_nio_sets_rules_and_reads_them_from_sync(new_nio: NewNio) -> None:
    alice: AsyncClient = await new_nio()
    ok(await alice.sync(timeout=0), SyncResponse)
    ok(
        await alice.set_pushrule(
            "global",
            PushRuleKind.override,
            "coffee",
            actions=[PushNotify(), PushSetTweak("sound", "default")],
            conditions=[PushEventMatch("content.body", "coffee")],
        ),
        SetPushRuleResponse,
    )
    # A long-poll is woken by the change.
    response = ok(await alice.sync(timeout=10_000), SyncResponse)
    events = [e for e in response.account_data_events if isinstance(e, PushRulesEvent)]
    assert events, response.account_data_events
    override = events[-1].global_rules.override
    assert [r.id for r in override][:2] == [".m.rule.master", "coffee"]
    assert override[1].conditions == [PushEventMatch("content.body", "coffee")]
