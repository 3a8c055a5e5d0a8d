"""The advocates' hand-off queue and outcomes through the API (scripted scenario hands off)."""

from __future__ import annotations

import pytest
import trio

from intercept.store.advocacy import RecordOutcome

from helpers import BUYER, auth, scripted_registry, serving

A, B, C, D = "+12065550101", "+12065550102", "+12065550103", "+12065550104"


async def test_the_queue_puts_the_longest_waiting_first(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted") as live:
        a = await live.text("human", their=A)  # handed off by the scenario
        await trio.sleep(0.01)
        c = await live.text("human", their=C)
        await trio.sleep(0.01)
        b = await live.text("hi", their=B)  # taken over by a human, then he answers
        await live.client.post(f"/api/conversations/{b}/messages", headers=auth("advocate"),
                               json={"text": "hello, I'm Sam"})
        await trio.sleep(0.01)
        await live.text("thanks", their=B)
        await live.text("hi", their=D)  # the bot has this one: not in the queue

        async def queue() -> list[tuple[int, bool, int]]:
            page = (await live.client.get("/api/queue", headers=auth("advocate"))).json()
            assert page["total"] == len(page["items"])
            return [(e["conversation"]["id"], e["waiting_since"] is not None, e["unanswered"])
                    for e in page["items"]]

        assert await queue() == [(a, True, 0), (c, True, 0), (b, True, 1)]
        await live.text("anyone?", their=A)
        assert await queue() == [(a, True, 1), (c, True, 0), (b, True, 1)]
        await live.client.post(f"/api/conversations/{a}/messages", headers=auth("advocate"),
                               json={"text": "yes, I'm here"})
        assert await queue() == [(c, True, 0), (b, True, 1), (a, False, 0)]
        await live.client.post(f"/api/conversations/{c}/outcomes", headers=auth("advocate"),
                               json={"kind": "meeting_scheduled", "note": "Tue"})
        page = (await live.client.get("/api/queue", params={"limit": 1, "offset": 0},
                                      headers=auth("viewer"))).json()
        assert page["total"] == 3 and len(page["items"]) == 1
        first = page["items"][0]
        assert first["outcomes"] == ["meeting_scheduled"]
        assert first["conversation"]["status"] == "handed_off"
        assert first["conversation"]["operator"] is False
        assert first["last_message_at"] is not None
        await live.client.post(f"/api/conversations/{a}/hand-back", headers=auth("advocate"))
        with trio.fail_after(10):  # the scenario resumes ("back") and the status follows
            while a in [i for i, *_ in await queue()]:
                await trio.sleep(0.02)
            while live.phones.by_number[A][-1] != "back":
                await trio.sleep(0.02)
        assert [i for i, *_ in await queue()] == [c, b]


async def test_a_taken_over_conversation_stays_silent_while_queued(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted") as live:
        cid = await live.text("human")
        await live.text("please")
        await trio.sleep(0.1)
        assert live.phones.by_number[BUYER] == ["a person will text you"]
        r = await live.client.post(f"/api/conversations/{cid}/messages",
                                   headers=auth("advocate"), json={"text": "I'm Sam"})
        assert r.status_code == 200
        await live.phones.wait_for(2, timeout=10)
        await live.text("ok")
        await trio.sleep(0.1)
        assert live.phones.by_number[BUYER] == ["a person will text you", "I'm Sam"]


def test_an_outcome_is_checked_before_it_is_queued():
    with pytest.raises(ValueError, match="unknown outcome 'won'"):
        RecordOutcome(1, "won", author="a", now=0)
    with pytest.raises(ValueError, match="needs a note"):
        RecordOutcome(1, "other", author="a", now=0, note="  ")
    assert RecordOutcome(1, "other", author="a", now=0, note="moved away").kind == "other"
