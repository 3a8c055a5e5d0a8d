"""The admin API: every endpoint with each role, masking, audit rows, take-over through HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from intercept.foundation.jsontext import canonical
from intercept.foundation.phone import tagged_mask
from intercept.http.app import App

from helpers import ADMIN, BUYER, ECHO, OTHER_OUR, OUR, auth, serving

BUYER_MASKED = tagged_mask(BUYER)  # "+1••••••••99 #xyz": two alike are told apart
ROLES = ("viewer", "advocate", "admin")


# Every route that needs a token, with the least role that may call it and a call that works.
ENDPOINTS = [
    ("GET", "/api/me", None, "viewer", 200),
    ("GET", "/api/conversations", None, "viewer", 200),
    ("GET", "/api/conversations/{id}", None, "viewer", 200),
    ("GET", "/api/conversations/{id}/outcomes", None, "viewer", 200),
    ("GET", "/api/queue", None, "viewer", 200),
    ("GET", "/api/stats", None, "viewer", 200),
    ("GET", "/api/report", None, "viewer", 200),
    ("POST", "/api/conversations/{id}/messages", {"text": "hello from a human"}, "advocate",
     200),
    ("POST", "/api/conversations/{id}/hand-back", None, "advocate", 200),
    ("POST", "/api/conversations/{id}/outcomes", {"kind": "positive_conversation"}, "advocate",
     201),
    ("POST", "/api/scenarios/reload", None, "admin", 200),
    ("GET", "/api/numbers/health", None, "viewer", 200),
    ("GET", "/api/campaigns", None, "viewer", 200),
    # no campaign in this config: the role checks pass, then 404 (tests/test_api_campaigns.py)
    ("POST", "/api/campaigns/start", {"name": "spring"}, "admin", 404),
    ("POST", "/api/campaigns/pause", {"name": "spring"}, "admin", 404),
    ("GET", "/api/audit", None, "admin", 200),
    ("POST", "/api/purge", {"older_than": "180d", "dry_run": True}, "admin", 200),
    # the hand-off was closed by the last hand-back: the role checks pass, then 409
    # (tests/test_handoffs_api.py)
    ("GET", "/api/handoffs", None, "viewer", 200),
    ("POST", "/api/conversations/{id}/claim", None, "advocate", 409),
    ("POST", "/api/conversations/{id}/release", None, "advocate", 409),
    ("POST", "/api/conversations/{id}/assign", {"advocate": "sam"}, "admin", 409),
    ("GET", "/api/conversations/{id}/notes", None, "advocate", 200),
    ("POST", "/api/conversations/{id}/notes", {"text": "call after 6"}, "advocate", 201),
]


async def test_every_endpoint_with_each_role(tmp_path):
    async with serving(tmp_path, api={"max_failures": 0}) as live:  # no lockout here
        app = App(live.server.http_services)
        declared = {(r.method, r.path) for r in app.routes.routes if r.role is not None}
        assert declared == {(m, p) for m, p, *_ in ENDPOINTS}, "ENDPOINTS must list every route"
        cid = await live.text("hi")
        for method, template, body, least, ok in ENDPOINTS:
            path = template.format(id=cid)
            r = await live.client.request(method, path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "needs a token" in r.json()["error"]
            r = await live.client.request(method, path, json=body,
                                          headers={"Authorization": "Bearer not-a-real-token"})
            assert (r.status_code, r.json()) == (401, {"error": "the token is not valid"})
            r = await live.client.request(method, path, json=body,
                                          headers={"Authorization": f"Basic {ADMIN}"})
            assert r.status_code == 401 and "Bearer TOKEN" in r.json()["error"]
            for role in ROLES:
                if path.endswith("/hand-back"):  # give each role something to hand back
                    await live.client.post(f"/api/conversations/{cid}/messages",
                                           json={"text": "a human"}, headers=auth("admin"))
                r = await live.client.request(method, path, json=body, headers=auth(role))
                if ROLES.index(role) < ROLES.index(least):
                    assert r.status_code == 403, (role, path, r.text)
                    assert r.json()["error"] == (
                        f"this needs the {least} role; the token "
                        f"'{ {'viewer': 'val', 'advocate': 'sam'}[role]}' has the {role} role")
                else:
                    assert r.status_code == ok, (role, path, r.text)
        me = await live.client.get("/api/me", headers=auth("advocate"))
        assert me.json() == {"name": "sam", "role": "advocate"}


async def test_public_endpoints_need_no_token(tmp_path):
    async with serving(tmp_path) as live:
        assert (await live.client.get("/healthz")).json()["status"] == "ok"
        assert (await live.client.get("/metrics")).status_code == 200
        assert (await live.client.get("/sim/messages")).json() == {"messages": []}
        r = await live.client.post("/sim/messages", json={"from": BUYER, "to": OUR, "text": "x"})
        assert r.status_code == 200
        assert (await live.client.get("/api/openapi.json")).status_code == 200
        r = await live.client.put("/api/conversations/1/outcomes", headers=auth("admin"))
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
        r = await live.client.get("/api/conversations/abc", headers=auth("admin"))
        assert r.status_code == 404


async def test_numbers_are_masked_for_the_viewer(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        for role, number in (("viewer", BUYER_MASKED), ("advocate", BUYER), ("admin", BUYER)):
            page = (await live.client.get("/api/conversations", headers=auth(role))).json()
            assert page["items"][0]["their_number"] == number
            assert page["items"][0]["our_number"] == OUR
            detail = (await live.client.get(f"/api/conversations/{cid}", headers=auth(role)))
            assert detail.json()["conversation"]["their_number"] == number
            assert BUYER in detail.text if role != "viewer" else BUYER not in detail.text
        await live.client.post(f"/api/conversations/{cid}/messages", headers=auth("advocate"),
                               json={"text": "hello"})
        queue = (await live.client.get("/api/queue", headers=auth("viewer"))).json()
        assert queue["items"][0]["conversation"]["their_number"] == BUYER_MASKED
        r = await live.client.get("/api/conversations", params={"number": BUYER},
                                  headers=auth("viewer"))
        assert r.status_code == 403 and "advocate role" in r.json()["error"]
        r = await live.client.get("/api/conversations", params={"number": "(206) 555-0199"},
                                  headers=auth("advocate"))
        assert [c["id"] for c in r.json()["items"]] == [cid]


async def test_search_filters_and_paging(tmp_path):
    async with serving(tmp_path) as live:
        ended = await live.text("bye", their="+12065550101")
        seattle = await live.text("hi", their="+12065550102")
        atlanta = await live.text("hi", their="+12065550103", ours=OTHER_OUR)
        taken = await live.text("hi", their="+12065550104")
        await live.client.post(f"/api/conversations/{taken}/messages", headers=auth("advocate"),
                               json={"text": "a human"})

        async def ids(**params: Any) -> list[int]:
            r = await live.client.get("/api/conversations", params=params,
                                      headers=auth("viewer"))
            assert r.status_code == 200, r.text
            return [c["id"] for c in r.json()["items"]]

        assert await ids() == [taken, atlanta, seattle, ended]
        assert await ids(status="ended") == [ended]
        assert await ids(outcome="finished") == [ended]
        assert await ids(city="atlanta") == [atlanta]
        assert await ids(city="seattle", status="active") == [taken, seattle]
        assert await ids(scenario="echo", version=1) == [taken, atlanta, seattle, ended]
        assert await ids(scenario="other") == []
        assert await ids(operator="true") == [taken]
        assert await ids(operator="false", status="active") == [atlanta, seattle]
        assert await ids(since="2000-01-01", until="2999-12-31") == [taken, atlanta, seattle,
                                                                      ended]
        assert await ids(until="2000-01-01") == []
        assert await ids(since="2999-01-01T00:00:00+00:00") == []
        assert await ids(limit=2) == [taken, atlanta]
        assert await ids(limit=2, offset=2) == [seattle, ended]
        page = (await live.client.get("/api/conversations", params={"limit": 1},
                                      headers=auth("viewer"))).json()
        assert (page["total"], page["limit"], page["offset"]) == (4, 1, 0)
        assert page["items"][0]["city"] == "seattle" and page["items"][0]["operator"] is True
        assert page["items"][0]["messages_in"] == 1 and page["items"][0]["messages_out"] == 2
        for params, message in [
            ({"status": "sleeping"}, "query parameter 'status': expected one of"),
            ({"city": "paris"}, "unknown city 'paris'; the cities are atlanta, seattle"),
            ({"limit": "0"}, "query parameter 'limit': expected 'int' >= 1"),
            ({"limit": "x"}, "query parameter 'limit': expected 'int', got 'str'"),
            ({"since": "yesterday"}, "'yesterday' is not a date (YYYY-MM-DD) or an ISO 8601"),
            ({"colour": "red"}, "unknown query parameter 'colour'"),
            ({"number": "12"}, "query parameter 'number' is not a valid phone number"),
        ]:
            r = await live.client.get("/api/conversations", params=params,
                                      headers=auth("advocate"))
            assert r.status_code == 400, (params, r.text)
            assert message in r.json()["error"], (params, r.json())


async def test_a_transcript_merges_both_directions_with_tags_and_transitions(tmp_path):
    from helpers import scripted_registry

    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted") as live:
        cid = await live.text("tag")
        await live.text("go")
        await live.client.post(f"/api/conversations/{cid}/messages", headers=auth("advocate"),
                               json={"text": "a human here"})
        await live.phones.wait_for(3, timeout=10)
        detail = (await live.client.get(f"/api/conversations/{cid}",
                                        headers=auth("viewer"))).json()
        lines = [(t["direction"], t["text"], t["kind"]) for t in detail["transcript"]]
        assert lines == [("in", "tag", None), ("out", "tagged", "reply"), ("in", "go", None),
                         ("out", "went", "reply"), ("out", "a human here", "operator")]
        assert {t["status"] for t in detail["transcript"][1::2]} <= {"sent", "delivered"}
        assert [t["name"] for t in detail["tags"]] == ["asked-price"]
        assert [(t["source"], t["target"]) for t in detail["transitions"]] == [
            ("", "wait"), ("wait", "next")]
        assert detail["conversation"]["tags"] == ["asked-price"]
        tagged = await live.client.get("/api/conversations", params={"tag": "asked-price"},
                                       headers=auth("viewer"))
        assert [c["id"] for c in tagged.json()["items"]] == [cid]
        untagged = await live.client.get("/api/conversations", params={"tag": "nope"},
                                         headers=auth("viewer"))
        assert untagged.json()["items"] == []
        missing = await live.client.get("/api/conversations/999", headers=auth("viewer"))
        assert (missing.status_code, missing.json()) == (404, {"error": "no conversation 999"})


async def test_take_over_and_hand_back_change_what_the_bot_does(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        assert live.phones.by_number[BUYER] == ["re: hi"]
        r = await live.client.post(f"/api/conversations/{cid}/messages",
                                   headers=auth("advocate"),
                                   json={"text": "Hi, this is Sam. Can I help?"})
        assert r.json() == {"id": f"{cid}.op.1", "conversation_id": cid, "status": "queued"}
        await live.phones.wait_for(2, timeout=10)
        await live.text("who is this")
        await trio.sleep(0.2)
        assert live.phones.by_number[BUYER] == ["re: hi", "Hi, this is Sam. Can I help?"]
        r = await live.client.post(f"/api/conversations/{cid}/hand-back",
                                   headers=auth("advocate"))
        assert r.json() == {"conversation_id": cid, "operator": False}
        await live.text("back to you")
        await live.phones.wait_for(3, timeout=10)
        assert live.phones.by_number[BUYER][-1] == "re: back to you"
        r = await live.client.post(f"/api/conversations/{cid}/hand-back",
                                   headers=auth("advocate"))
        assert r.status_code == 409
        assert r.json()["error"] == (f"conversation {cid} is not with a human (status active): "
                                     "there is nothing to hand back")


async def test_operator_message_errors(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("STOP")
        url = f"/api/conversations/{cid}/messages"
        cases = [
            (b"{not json", 400, "the request body is not valid JSON"),
            (b'{"text": "x", "colour": "red"}', 400, "invalid request body: unknown field "
                                                     "'colour'"),
            (b'{"text": 5}', 400, "invalid request body: text: expected 'str', got 'int'"),
            (b"{}", 400, "invalid request body: missing required field 'text'"),
            (b'{"text": ""}', 400, "invalid request body: text: expected 'str' of length >= 1"),
            (b'{"text": "   "}', 400, f"conversation {cid}: the message is empty"),
            (b'{"text": "please talk to me"}', 409, f"conversation {cid}: the number opted out"),
        ]
        for body, status, message in cases:
            r = await live.client.post(url, content=body, headers=auth("advocate"))
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"].startswith(message), (body, r.json())
        r = await live.client.post("/api/conversations/999/messages", json={"text": "hello"},
                                   headers=auth("advocate"))
        assert (r.status_code, r.json()) == (404, {"error": "no conversation 999"})
        r = await live.client.post("/api/conversations/999/hand-back", headers=auth("advocate"))
        assert r.status_code == 404
        big = await live.client.post(url, content=b"x" * 70_000, headers=auth("advocate"))
        assert big.status_code == 413


async def test_audit_rows_are_written(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        await live.client.get(f"/api/conversations/{cid}", headers=auth("viewer"))
        await live.client.post(f"/api/conversations/{cid}/messages", json={"text": "secret"},
                               headers=auth("viewer"))
        await live.client.post(f"/api/conversations/{cid}/messages", json={"text": "secret"},
                               headers=auth("advocate"))
        await live.client.post(f"/api/conversations/{cid}/outcomes",
                               json={"kind": "other", "note": "called back"},
                               headers=auth("advocate"))
        await live.client.post(f"/api/conversations/{cid}/hand-back", headers=auth("advocate"))
        await live.client.post("/api/scenarios/reload")
        await live.client.post("/api/scenarios/reload", headers=auth("admin"))
        await live.client.get("/api/conversations", headers=auth("admin"))
        await live.client.get("/api/conversations", params={"number": BUYER, "status": "active"},
                              headers=auth("advocate"))
        await live.client.get("/api/queue", headers=auth("viewer"))
        await live.client.get("/api/stats", headers=auth("viewer"))  # no numbers: not audited
        rows = live.query("SELECT actor, role, action, conversation_id, status, detail "
                          "FROM audit ORDER BY id")
        assert rows == [
            ("val", "viewer", "GET /api/conversations/{id}", cid, 200, "2 messages"),
            ("val", "viewer", "POST /api/conversations/{id}/messages", cid, 403,
             "this needs the advocate role; the token 'val' has the viewer role"),
            ("sam", "advocate", "POST /api/conversations/{id}/messages", cid, 200,
             f"queued {cid}.op.1 (6 characters)"),
            ("sam", "advocate", "POST /api/conversations/{id}/outcomes", cid, 201,
             "outcome other"),
            ("sam", "advocate", "POST /api/conversations/{id}/hand-back", cid, 200,
             "was active, taken over"),
            ("anonymous", "", "POST /api/scenarios/reload", None, 401,
             "this endpoint needs a token: send 'Authorization: Bearer TOKEN'"),
            ("root", "admin", "POST /api/scenarios/reload", None, 200,
             "no changes (1 scenarios loaded)"),
            ("root", "admin", "GET /api/conversations", None, 200,
             "1 of 1 from 0 with full numbers"),
            ("sam", "advocate", "GET /api/conversations", None, 200,
             "1 of 1 from 0 with full numbers; number=+1••••••••99, status=active"),
            ("val", "viewer", "GET /api/queue", None, 200, "0 of 0 from 0 with masked numbers"),
        ]
        assert not any("secret" in str(row) or BUYER in str(row) for row in rows)
        page = (await live.client.get("/api/audit", params={"actor": "sam"},
                                      headers=auth("admin"))).json()
        assert page["total"] == 4
        assert [e["action"].split()[-1] for e in page["items"]] == [
            "/api/conversations", "/api/conversations/{id}/hand-back",
            "/api/conversations/{id}/outcomes", "/api/conversations/{id}/messages"]
        page = (await live.client.get("/api/audit", params={"conversation_id": cid, "limit": 1},
                                      headers=auth("admin"))).json()
        assert page["total"] == 5 and len(page["items"]) == 1


async def test_every_changing_route_is_audited(tmp_path):
    async with serving(tmp_path) as live:
        for route in App(live.server.http_services).routes.routes:
            if route.method != "GET" and route.path.startswith("/api/"):
                assert route.audit, route.action
            if route.path == "/api/conversations/{id}" and route.method == "GET":
                assert route.audit


async def test_outcomes(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        url = f"/api/conversations/{cid}/outcomes"
        r = await live.client.post(url, json={"kind": "meeting_scheduled", "note": "Tue 10am"},
                                   headers=auth("advocate"))
        assert r.status_code == 201
        first = r.json()
        assert (first["kind"], first["note"], first["author"]) == (
            "meeting_scheduled", "Tue 10am", "sam")
        await live.client.post(url, json={"kind": "connected_to_services"},
                               headers=auth("admin"))
        r = await live.client.post(url, json={"kind": "other"}, headers=auth("advocate"))
        assert r.status_code == 400 and "needs a note" in r.json()["error"]
        r = await live.client.post(url, json={"kind": "married"}, headers=auth("advocate"))
        assert r.status_code == 400 and "kind: expected one of" in r.json()["error"]
        r = await live.client.post("/api/conversations/999/outcomes",
                                   json={"kind": "other", "note": "x"}, headers=auth("advocate"))
        assert r.status_code == 404
        listed = (await live.client.get(url, headers=auth("viewer"))).json()["items"]
        assert [(o["kind"], o["author"]) for o in listed] == [
            ("meeting_scheduled", "sam"), ("connected_to_services", "root")]
        assert (await live.client.get("/api/conversations/999/outcomes",
                                      headers=auth("viewer"))).status_code == 404
        stored = live.query("SELECT conversation_id, kind, author FROM advocate_outcomes")
        assert stored == [(cid, "meeting_scheduled", "sam"), (cid, "connected_to_services",
                                                             "root")]


async def test_stats(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("bye", their="+12065550101")
        cid = await live.text("hi", their="+12065550102")
        await live.text("hi", their="+12065550103", ours=OTHER_OUR)
        await live.text("STOP", their="+12065550104")
        await live.client.post(f"/api/conversations/{cid}/messages", headers=auth("advocate"),
                               json={"text": "hello"})
        await live.client.post(f"/api/conversations/{cid}/outcomes", headers=auth("advocate"),
                               json={"kind": "positive_conversation"})
        await live.phones.wait_for(4, timeout=10)
        stats = (await live.client.get("/api/stats", headers=auth("viewer"))).json()
        assert stats["conversations"] == 4
        assert stats["by_status"] == {"active": 3, "ended": 1}
        assert stats["by_outcome"] == {"finished": 1}
        assert stats["by_scenario"] == [{"scenario": "echo", "version": 1, "conversations": 4}]
        assert stats["by_city"] == {"seattle": 3, "atlanta": 1}
        assert stats["messages_in"] == 4
        # 3 replies, the operator's message and the STOP confirmation: the echo's reading of
        # a STOP it does not know is dropped, so nothing had to be refused
        assert sum(stats["messages_out"].values()) == 5
        assert "refused" not in stats["messages_out"]
        assert stats["with_a_human"] == 1 and stats["opted_out"] == 1
        assert stats["advocate_outcomes"] == {"positive_conversation": 1}
        assert stats["live_actors"] >= 0 and stats["outbox_depth"] >= 0


async def test_without_tokens_a_local_proxy_is_not_admin(tmp_path):
    """Finding 2: a reverse proxy on the same machine makes every request come from 127.0.0.1;
    that proved admin before. Now nothing is trusted for where it comes from."""
    async with serving(tmp_path, tokens="") as live:
        proxied = {"X-Forwarded-For": "198.51.100.7"}
        r = await live.client.post("/api/purge", json={"older_than": "180d"}, headers=proxied)
        assert r.status_code == 401, r.text
        for header in ({"Authorization": "Bearer anything-at-all-000"}, {}):
            me = await live.client.get("/api/me", headers={**proxied, **header})
            assert me.status_code == 401
        r = await live.client.post("/api/scenarios/reload")
        assert r.status_code == 401
        assert (await live.client.get("/healthz")).status_code == 200


async def test_reload_keeps_its_answer_shape(tmp_path):
    async with serving(tmp_path) as live:
        folder = Path(live.server.config.scenario_dir)
        (folder / "echo.yaml").write_text(ECHO.replace("version: 1", "version: 2"))
        r = await live.client.post("/api/scenarios/reload", headers=auth("admin"))
        assert r.json() == {"ok": True, "summary": "loaded echo v2; 0 unchanged",
                            "added": ["echo v2"], "unchanged": []}
        (folder / "echo.yaml").write_text("name: echo\nversion: 3\nstart: nowhere\nstates: {}\n")
        r = await live.client.post("/api/scenarios/reload", headers=auth("admin"))
        assert r.status_code == 422
        assert r.json()["ok"] is False and r.json()["errors"]


async def test_the_openapi_description_lists_every_route(tmp_path):
    async with serving(tmp_path) as live:
        doc = (await live.client.get("/api/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        routes = App(live.server.http_services).routes.routes
        for route in routes:
            op = doc["paths"][route.path][route.method.lower()]
            assert op["summary"] == route.summary
            if route.role is not None:
                assert op["security"] == [{"bearer": []}]
                assert op["x-intercept-role"] == route.role.name
                assert {"401", "403", "429"} <= set(op["responses"])
            for name in route.params:
                assert {"name": name, "in": "path"}.items() <= op["parameters"][0].items()
        described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        assert described == {(r.method, r.path) for r in routes}
        query = doc["paths"]["/api/conversations"]["get"]["parameters"]
        assert {p["name"] for p in query} >= {"status", "outcome", "city", "scenario", "version",
                                             "since", "until", "operator", "tag", "limit",
                                             "offset"}
        body = doc["paths"]["/api/conversations/{id}/outcomes"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/OutcomeRequest"}
        refs = _refs(doc)
        assert refs and all(ref.split("/")[-1] in doc["components"]["schemas"] for ref in refs)
        assert doc == canonical(doc), "descriptions cleaned and required lists sorted"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("shape", ["OperatorMessage", "OutcomeRequest", "HandBackRequest",
                                   "SimInbound", "CampaignRequest"])
def test_request_bodies_forbid_unknown_fields(shape):
    from intercept.http import schemas

    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"bogus": 1}', type=getattr(schemas, shape))


async def test_the_report_is_the_clis_json_and_refuses_an_unknown_city(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("hi")
        viewer = auth("viewer")
        got = await live.client.get("/api/report", headers=viewer)
        assert got.status_code == 200, got.text
        body = got.json()
        assert set(body) == {"since", "cities", "total", "returns"}
        assert body["total"]["buyers"]["conversations"] == 1
        assert "+1" not in got.text  # counts only, never a number
        bad = await live.client.get("/api/report?city=atlantis", headers=viewer)
        assert bad.status_code == 400 and "atlantis" in bad.json()["error"]
        since = await live.client.get("/api/report?since=2999-01-01&period=year",
                                      headers=viewer)
        assert since.json()["total"]["buyers"]["conversations"] == 0
