"""The advocates' inbox through the API: urgent first, claimed ones hidden from other
advocates, a claimed conversation refuses another advocate's reply (409 with a sentence),
release, assign (admin), notes, and `sent_by` in transcripts."""

from __future__ import annotations

from intercept.http.app import App

from helpers import TOKENS, auth, scripted_registry, serving

A, B, C = "+12065550101", "+12065550102", "+12065550103"
KIM = "advocate-token-0000000kim"


def kim() -> dict[str, str]:
    return {"Authorization": f"Bearer {KIM}"}


async def test_the_inbox_claims_and_replies(tmp_path):
    tokens = TOKENS + f",advocate:{KIM}:kim"
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted",
                       tokens=tokens) as live:
        a = await live.text("human", their=A)
        b = await live.text("urgent", their=B)
        c = await live.text("human", their=C)
        await live.text("hi", their="+12065550104")  # the bot has it: not in the inbox

        async def inbox(headers: dict[str, str]) -> list[tuple[int, str, str | None]]:
            r = await live.client.get("/api/handoffs", headers=headers)
            assert r.status_code == 200, r.text
            return [(i["conversation"]["id"], i["handoff"]["priority"],
                     i["handoff"]["claimed_by"]) for i in r.json()["items"]]

        assert await inbox(auth("advocate")) == [(b, "urgent", None), (a, "normal", None),
                                                 (c, "normal", None)]
        r = await live.client.post(f"/api/conversations/{b}/claim", headers=auth("advocate"),
                                   json={})
        assert r.status_code == 200 and r.json()["handoff"]["claimed_by"] == "sam"
        assert await inbox(kim()) == [(a, "normal", None), (c, "normal", None)]
        assert (await inbox(auth("admin")))[0] == (b, "urgent", "sam")
        viewer = (await live.client.get("/api/handoffs", headers=auth("viewer"))).json()
        assert "••" in viewer["items"][0]["conversation"]["their_number"]

        r = await live.client.post(f"/api/conversations/{b}/messages", headers=kim(),
                                   json={"text": "I'm Kim"})
        assert r.status_code == 409
        assert r.json()["error"] == (f"conversation {b}: advocate 'sam' has claimed this "
                                     "hand-off; ask them to release it, or an admin to "
                                     "assign it to you")
        r = await live.client.post(f"/api/conversations/{b}/claim", headers=kim(), json={})
        assert r.status_code == 409 and "advocate 'sam' has claimed" in r.json()["error"]
        r = await live.client.post(f"/api/conversations/{b}/messages",
                                   headers=auth("advocate"), json={"text": "I'm Sam"})
        assert r.status_code == 200
        await live.phones.wait_for(4, timeout=10)
        detail = (await live.client.get(f"/api/conversations/{b}",
                                        headers=auth("advocate"))).json()
        assert [(m["text"], m["sent_by"]) for m in detail["transcript"]
                if m["direction"] == "out"] == [("call 911 if you are in danger", None),
                                                ("I'm Sam", "sam")]
        assert detail["handoff"]["claimed_by"] == "sam"
        assert detail["handoff"]["first_reply_at"] is not None

        r = await live.client.post(f"/api/conversations/{b}/release", headers=kim(), json={})
        assert r.status_code == 409
        r = await live.client.post(f"/api/conversations/{b}/assign", headers=auth("advocate"),
                                   json={"advocate": "kim"})
        assert r.status_code == 403
        r = await live.client.post(f"/api/conversations/{b}/assign", headers=auth("admin"),
                                   json={"advocate": "kim"})
        assert r.status_code == 200 and r.json()["previous"] == "sam"
        r = await live.client.post(f"/api/conversations/{b}/messages", headers=kim(),
                                   json={"text": "Hi, Kim here now"})
        assert r.status_code == 200
        r = await live.client.post(f"/api/conversations/{b}/hand-back",
                                   headers=auth("advocate"), json={})
        assert r.status_code == 409
        assert r.json()["error"] == (f"conversation {b}: advocate 'kim' has claimed this "
                                     "hand-off; ask them to hand it back, or an admin")
        r = await live.client.post(f"/api/conversations/{b}/release", headers=kim(), json={})
        assert r.status_code == 200 and r.json()["handoff"]["claimed_by"] is None

        r = await live.client.post(f"/api/conversations/{a}/notes", headers=auth("advocate"),
                                   json={"text": "prefers texts after 6pm"})
        assert r.status_code == 201 and r.json()["author"] == "sam"
        notes = (await live.client.get(f"/api/conversations/{a}/notes", headers=kim())).json()
        assert [n["text"] for n in notes["items"]] == ["prefers texts after 6pm"]
        r = await live.client.get(f"/api/conversations/{a}/notes", headers=auth("viewer"))
        assert r.status_code == 403
        audit = live.query("SELECT detail FROM audit WHERE action = "
                           "'POST /api/conversations/{id}/notes'")
        assert audit == [("note of 23 characters",)]  # never the note itself

        r = await live.client.post(f"/api/conversations/{a}/hand-back",
                                   headers=auth("advocate"), json={})
        assert r.status_code == 200
        r = await live.client.post(f"/api/conversations/{a}/claim", headers=auth("advocate"),
                                   json={})
        assert r.status_code == 409
        assert r.json()["error"] == (f"conversation {a} has no open hand-off: nobody handed "
                                     "it to a person")
        r = await live.client.post("/api/conversations/9999/claim", headers=auth("advocate"),
                                   json={})
        assert r.status_code == 404


async def test_the_openapi_document_describes_the_inbox(tmp_path):
    async with serving(tmp_path) as live:
        doc = (await live.client.get("/api/openapi.json")).json()
        for path in ("/api/handoffs", "/api/conversations/{id}/claim",
                     "/api/conversations/{id}/release", "/api/conversations/{id}/assign",
                     "/api/conversations/{id}/notes"):
            assert path in doc["paths"]
        assign = doc["paths"]["/api/conversations/{id}/assign"]["post"]
        assert assign["x-intercept-role"] == "admin"
        assert any(r.path == "/api/handoffs" for r in App(live.server.http_services).routes.routes)
