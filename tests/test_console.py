"""The web console over HTTP (no browser): sessions, CSRF, CSP, roles and masking, the pages,
take-over and hand-back through the API's handlers, live events. tests/test_console_browser.py
drives the same pages in chromium."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from intercept.buyers.media import media_path
from intercept.console import app as console_app
from intercept.console.notices import QueueWatch
from intercept.console.rates import Rates
from intercept.console.sessions import Sessions
from intercept.console.web import CSP, safe_next
from intercept.gateways import SimGateway
from intercept.http.auth import Principal, Role
from intercept.server import Server
from intercept.store.console_reads import OpenHandoff
from intercept.store.tokens import CreateToken, revoke_token

from helpers import (
    BUYER,
    CSRF,
    OUR,
    PHOTO,
    TOKEN,
    TOKENS,
    Live,
    add_ads,
    login,
    outreach_config,
    scripted_registry,
    serving,
    shipped,
)


@asynccontextmanager
async def browser(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same server, with its own cookies."""
    async with httpx.AsyncClient(base_url=str(live.client.base_url), timeout=10) as client:
        yield client


async def test_login_trades_a_token_for_a_signed_http_only_cookie(tmp_path):
    async with serving(tmp_path) as live:
        page = await live.client.get("/login")
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert "<script>" not in page.text and "style=" not in page.text
        csrf = CSRF.search(page.text).group(1)
        r = await live.client.post("/login", data={"csrf": csrf, "token": TOKEN["advocate"],
                                                   "next": "/conversations"})
        assert r.status_code == 303 and r.headers["location"] == "/conversations"
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie"
                      and v.startswith("intercept_session="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain http here; behind https it is Secure
        assert TOKEN["advocate"] not in cookie
        home = await live.client.get("/")
        assert home.status_code == 200 and "Live conversations" in home.text
        assert "sam" in home.text and "advocate" in home.text
        audit = live.query("SELECT actor, action, status FROM audit WHERE action = 'POST /login'")
        assert audit == [("sam", "POST /login", 303)]

        async with browser(live) as other:  # behind a proxy that says https
            page = await other.get("/login")
            csrf = CSRF.search(page.text).group(1)
            r = await other.post("/login", data={"csrf": csrf, "token": TOKEN["viewer"]},
                                 headers={"X-Forwarded-Proto": "https"})
            cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie"
                          and v.startswith("intercept_session="))
            assert cookie.endswith("; Secure")


async def test_a_wrong_token_is_refused_and_audited(tmp_path):
    async with serving(tmp_path) as live:
        page = await live.client.get("/login")
        csrf = CSRF.search(page.text).group(1)
        r = await live.client.post("/login", data={"csrf": csrf,
                                                   "token": "not-a-real-token-at-all"})
        assert r.status_code == 401 and "That token is not valid." in r.text
        assert "intercept_session" not in r.headers.get("set-cookie", "")
        rows = live.query("SELECT actor, status, detail FROM audit WHERE action = 'POST /login'")
        assert rows and rows[0][:2] == ("anonymous", 401)
        assert "not-a-real-token" not in rows[0][2]


async def test_pages_send_you_to_the_login_form_without_a_session(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        for path in ("/", "/conversations", f"/conversations/{cid}"):
            r = await live.client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next=" + path)
        r = await live.client.post(f"/conversations/{cid}/messages", data={"text": "x"})
        assert r.status_code == 401
        r = await live.client.get("/conversations",
                                  headers={"cookie": "intercept_session=e30.forged-signature"})
        assert r.status_code == 303


async def test_every_post_needs_the_csrf_token(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        r = await live.client.post("/login", data={"token": TOKEN["admin"]})
        assert r.status_code == 403 and "CSRF" in r.text
        csrf = await login(live.client, "admin")
        for path, data in ((f"/conversations/{cid}/messages", {"text": "hello"}),
                           (f"/conversations/{cid}/hand-back", {}), ("/logout", {})):
            r = await live.client.post(path, data=data)
            assert r.status_code == 403 and "CSRF token" in r.text, path
            r = await live.client.post(path, data={**data, "csrf": csrf[:-2] + "xx"})
            assert r.status_code == 403, path
        assert live.query("SELECT count(*) FROM outbox WHERE kind = 'operator'") == [(0,)]
        assert (await live.client.get("/")).status_code == 200  # still logged in


async def test_viewer_sees_masked_numbers_and_cannot_post(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        csrf = await login(live.client, "viewer")
        listing = await live.client.get("/conversations")
        assert listing.status_code == 200
        assert BUYER not in listing.text and BUYER[-2:] in listing.text
        assert "Numbers are masked" in listing.text
        page = await live.client.get(f"/conversations/{cid}")
        assert BUYER not in page.text and 'action="/conversations/' not in page.text
        assert "need the advocate role" in page.text
        r = await live.client.post(f"/conversations/{cid}/messages",
                                   data={"csrf": csrf, "text": "from a viewer"})
        assert r.status_code == 403 and "needs the advocate role" in r.text
        r = await live.client.get("/conversations", params={"number": BUYER})
        assert r.status_code == 403
        assert live.query("SELECT count(*) FROM outbox WHERE kind = 'operator'") == [(0,)]
        actions = live.query("SELECT action, detail FROM audit WHERE actor = 'val' "
                             "ORDER BY id")
        assert ("GET /conversations", "1 of 1 from 0 with masked numbers") in actions
        assert ("GET /conversations/{id}", "2 messages with masked numbers") in actions


async def test_advocate_sees_numbers_lookups_and_searches_by_number(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        await live.text("other", their="+12065550177")
        await login(live.client, "advocate")
        r = await live.client.get("/conversations", params={"number": BUYER})
        assert r.status_code == 200 and BUYER in r.text and "+12065550177" not in r.text
        detail = live.query("SELECT detail FROM audit WHERE action = 'GET /conversations' "
                            "ORDER BY id DESC LIMIT 1")[0][0]
        assert detail.startswith("1 of 1 from 0 with full numbers; number=+1")
        assert BUYER not in detail
        page = await live.client.get(f"/conversations/{cid}")
        assert BUYER in page.text and "Lookups" in page.text and "Photos" in page.text


async def test_list_filters(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("hi")
        await live.text("bye", their="+12065550177")  # ends the echo conversation
        await login(live.client, "viewer")

        async def count(**params: str) -> int:
            r = await live.client.get("/conversations", params=params)
            assert r.status_code == 200, r.text
            return int(re.search(r"<p>(\d+) conversation", r.text).group(1))

        assert await count() == 2
        assert await count(city="seattle") == 2 and await count(city="atlanta") == 0
        assert await count(kind="buyer") == 2 and await count(kind="outreach") == 0
        assert await count(status="ended") == 1 and await count(status="active") == 1
        assert await count(outcome="finished") == 1
        r = await live.client.get("/conversations", params={"city": "paris"})
        assert r.status_code == 400 and "There is no city &#39;paris&#39;" in r.text
        r = await live.client.get("/conversations", params={"status": "nope"})
        assert r.status_code == 400


async def test_message_text_is_escaped(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text('<script>alert("x")</script><b onmouseover=1>')
        await login(live.client, "advocate")
        for path in (f"/conversations/{cid}", f"/conversations/{cid}/live"):
            page = await live.client.get(path)
            assert "<script>alert" not in page.text and "<b onmouseover" not in page.text
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_take_over_reply_and_hand_back_use_the_api_path(tmp_path):
    async with serving(tmp_path) as live:
        cid = await live.text("hi")
        csrf = await login(live.client, "advocate")
        r = await live.client.post(f"/conversations/{cid}/messages",
                                   data={"csrf": csrf, "text": "A person here. Are you ok?"})
        assert r.status_code == 303 and r.headers["location"] == f"/conversations/{cid}"
        assert live.query("SELECT operator FROM conversations WHERE id = ?", (cid,)) == [(1,)]
        with trio.fail_after(10):
            while "A person here. Are you ok?" not in live.phones.by_number[BUYER]:
                await trio.sleep(0.01)
        page = await live.client.get(f"/conversations/{cid}/live")
        assert "with a human" in page.text and "a human" in page.text
        r = await live.client.post(f"/conversations/{cid}/messages",
                                   data={"csrf": csrf, "text": ""})
        assert r.status_code == 400 and "1 to 1600 characters" in r.text
        r = await live.client.post(f"/conversations/{cid}/hand-back", data={"csrf": csrf})
        assert r.status_code == 303
        assert live.query("SELECT operator FROM conversations WHERE id = ?", (cid,)) == [(0,)]
        r = await live.client.post(f"/conversations/{cid}/hand-back", data={"csrf": csrf})
        assert r.status_code == 409 and "nothing to hand back" in r.text
        assert f'<a href="/conversations/{cid}">Back to conversation {cid}</a>' in r.text
        r = await live.client.post("/conversations/999/messages",
                                   data={"csrf": csrf, "text": "hello"})
        assert r.status_code == 404
        rows = live.query("SELECT actor, action, status, conversation_id, detail FROM audit "
                          "WHERE action LIKE 'POST /conversations%' ORDER BY id")
        assert rows[0][:4] == ("sam", "POST /conversations/{id}/messages", 200, cid)
        assert rows[0][4] == f"queued {cid}.op.1 (26 characters)"
        assert rows[1][:3] == ("sam", "POST /conversations/{id}/hand-back", 200)
        assert rows[2][:3] == ("sam", "POST /conversations/{id}/hand-back", 409)
        assert all("Are you ok" not in r[4] for r in rows)
        assert live.query("SELECT count(*) FROM outbox WHERE kind = 'operator'") == [(1,)]


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(tmp_path):
    async with serving(tmp_path) as live:
        csrf = await login(live.client, "viewer")
        copied = live.client.cookies["intercept_session"]
        r = await live.client.post("/logout", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        async with browser(live) as thief:
            r = await thief.get("/", headers={"cookie": f"intercept_session={copied}"})
            assert r.status_code == 303


async def test_the_transcript_streams_changes_as_server_sent_events(tmp_path):
    async with serving(tmp_path) as live:
        live.server.console.pages.poll = 0.02
        cid = await live.text("hi")
        await login(live.client, "viewer")
        async with live.client.stream("GET", f"/conversations/{cid}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["content-security-policy"] == CSP
            lines = stream.aiter_lines()
            seen: list[str] = []

            async def until(event: str) -> None:
                with trio.fail_after(10):
                    async for line in lines:
                        seen.append(line)
                        if line == event:
                            return

            await until("event: changed")  # at once: the page may be older than the stream
            await live.text("are you there", ours=OUR)
            await until("event: changed")
            assert "retry: 2000" in seen
            assert live.server.console.pages.streams == 1
        with trio.fail_after(10):  # the browser went away: the stream ends, not 5 min later
            while live.server.console.pages.streams:
                await trio.sleep(0.01)


async def test_static_files_and_unknown_paths(tmp_path):
    async with serving(tmp_path) as live:
        r = await live.client.get("/static/htmx.min.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert b"htmx" in r.content[:2000]
        assert (await live.client.get("/static/console.css")).status_code == 200
        assert (await live.client.get("/static/NOTICE")).status_code == 404
        assert (await live.client.get("/static/../app.py")).status_code == 404
        assert (await live.client.get("/conversations/x/y")).status_code in (303, 404)
        assert (await live.client.get("/healthz")).status_code == 200  # the app's, untouched
        assert (await live.client.get("/api/me")).status_code == 401


def test_next_stays_on_this_site():
    assert safe_next("/conversations?city=x") == "/conversations?city=x"
    for target in (None, "", "https://evil.example/", "//evil.example/", "/\\evil.example"):
        assert safe_next(target) == "/"


def test_sessions_are_signed_expire_and_end():
    sessions = Sessions(lifetime=100)
    session, cookie = sessions.create(Principal("sam", Role.advocate), "tok", now=1000.0)
    assert sessions.find(cookie, 1050.0) is session
    payload, _, signature = cookie.partition(".")
    assert sessions.find(f"{payload}.{signature[:-2]}AA", 1050.0) is None
    other = Sessions()
    assert other.find(cookie, 1050.0) is None  # another key (a restarted server)
    assert sessions.find(cookie, 1100.0) is None and len(sessions) == 0
    session, cookie = sessions.create(Principal("sam", Role.advocate), "tok", now=2000.0)
    sessions.end(session)
    assert sessions.find(cookie, 2001.0) is None


def test_rates_per_minute_from_counters():
    counts = [0.0, 0.0]
    now = [0.0]
    rates = Rates(lambda: (counts[0], counts[1]), lambda: now[0])
    now[0], counts[0], counts[1] = 30.0, 10.0, 5.0
    assert rates.sample() == pytest.approx((10.0, 5.0))  # 10 in 30 s: not scaled up
    now[0], counts[0] = 90.0, 70.0
    assert rates.sample() == pytest.approx((60.0, 0.0))  # the last minute: 60 in, none out


async def test_a_revoked_token_ends_its_sessions_at_the_next_check(tmp_path, monkeypatch):
    async with serving(tmp_path) as live:
        secret = "kims-stored-token-00000000001"
        await live.server.store.call(CreateToken("kim", "advocate", secret,
                                                 now=live.server.clock.now()))
        page = await live.client.get("/login")
        r = await live.client.post("/login", data={"csrf": CSRF.search(page.text).group(1),
                                                   "token": secret})
        assert r.status_code == 303
        monkeypatch.setattr(console_app, "RECHECK", 0.0)  # check the token on every request
        assert (await live.client.get("/")).status_code == 200
        with sqlite3.connect(tmp_path / "api.db") as conn:
            assert revoke_token(conn, "kim")
        r = await live.client.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_scenarios_and_campaigns_read_only(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("hi")
        await live.text("bye", their="+12065550177")
        await login(live.client, "viewer")
        r = await live.client.get("/scenarios")
        assert r.status_code == 200 and 'href="/scenarios/echo"' in r.text
        r = await live.client.get("/scenarios/echo")
        assert r.status_code == 200
        assert re.search(r'data-reached="done">1<', r.text)  # one conversation said bye
        assert re.search(r'data-reached="wait">2<', r.text)
        assert "v1 (2 conversations)" in r.text and "finished 1" in r.text
        r = await live.client.get("/scenarios/nope")
        assert r.status_code == 404 and "the scenarios are echo" in r.text
        assert (await live.client.get("/scenarios/%3Cb%3E")).status_code == 404
        assert (await live.client.post("/scenarios/echo")).status_code == 405
        r = await live.client.get("/campaigns")
        assert r.status_code == 200 and "has no <code>[[campaigns]]</code>" in r.text


@asynccontextmanager
async def campaign_server(tmp_path: Path, ads: list[str]) -> AsyncIterator[tuple[Server, str]]:
    """A served outreach config with campaign 'spring' over `ads`: the server and its URL."""
    add_ads(tmp_path / "api.db", ads)
    config = outreach_config({"name": "spring", "window": "00:00-24:00", "rate": "5/s",
                              "rate_per_number": "5/s"},
                             http={"enabled": True, "listen": "127.0.0.1:0"},
                             api={"tokens": TOKENS})
    server = Server(config, registry=shipped(), gateway=SimGateway(receipts=True),
                    store_path=tmp_path / "api.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        (base,) = server.http_addresses
        yield server, base
        server.stop()


async def test_campaigns_show_the_apis_figures(tmp_path):
    async with (campaign_server(tmp_path, ["+12065550141", "+12065550142"]) as (_, base),
                httpx.AsyncClient(base_url=base, timeout=10) as client):
        await login(client, "viewer")
        r = await client.get("/campaigns")
        assert r.status_code == 200
        assert "spring" in r.text and "state-idle" in r.text
        assert re.search(r"<tbody><tr><td>2</td>", r.text)  # two targets from the ads
        assert 'href="/scenarios/victim-outreach"' in r.text
        r = await client.get("/scenarios/victim-outreach")
        assert r.status_code == 200 and "start</span>" in r.text


async def test_photos_are_shown_to_advocates_only_and_audited(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # media.dir is beside the config's store path
    async with serving(tmp_path) as live:
        done = await live.server.gateway.inject(
            their_number=BUYER, our_number=OUR, text="me",
            media=("https://media.example/a.jpg", "https://media.example/b.svg"))
        cid = done.conversation_id
        with trio.fail_after(10):  # the fetcher refuses media.example (not an allowed host)
            while live.query("SELECT count(*) FROM media WHERE status = 'pending'") != [(0,)]:
                await trio.sleep(0.01)
        first, second = (m for (m,) in live.query(
            "SELECT id FROM media WHERE conversation_id = ? ORDER BY position", (cid,)))
        digest = hashlib.sha256(PHOTO).hexdigest()  # as if it had fetched them after all
        path = media_path(live.server.config.media_dir, digest)
        path.parent.mkdir(parents=True)
        path.write_bytes(PHOTO)
        with sqlite3.connect(tmp_path / "api.db") as conn:  # the second one claims to be SVG
            conn.executemany("UPDATE media SET status = 'stored', sha256 = ?, content_type = ?, "
                             "size = ? WHERE id = ?",
                             [(digest, "image/jpeg", len(PHOTO), first),
                              (digest, "image/svg+xml", len(PHOTO), second)])
        await login(live.client, "viewer")
        assert (await live.client.get(f"/conversations/{cid}/photos/{first}")).status_code \
            == 403
        async with browser(live) as advocate:
            await login(advocate, "advocate")
            page = await advocate.get(f"/conversations/{cid}")
            assert f'<img src="/conversations/{cid}/photos/{first}"' in page.text
            assert f'photos/{second}"' not in page.text
            r = await advocate.get(f"/conversations/{cid}/photos/{first}")
            assert r.status_code == 200 and r.content == PHOTO
            assert r.headers["content-type"] == "image/jpeg"
            assert r.headers["content-security-policy"] == CSP
            r = await advocate.get(f"/conversations/{cid}/photos/{second}")
            assert r.status_code == 415 and "JPEG, PNG, GIF and WebP only" in r.text
            assert (await advocate.get(f"/conversations/{cid + 1}/photos/{first}")
                    ).status_code == 404
        rows = live.query("SELECT actor, detail FROM audit WHERE action = "
                          "'GET /conversations/{id}/photos/{photo}'")
        assert rows == [("sam", f"photo {first} (image/jpeg, {len(PHOTO)} bytes)")]


async def test_the_overview_shows_the_servers_figures(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("hi")
        await live.text("bye", their="+12065550177")
        await login(live.client, "viewer")
        r = await live.client.get("/overview")
        assert r.status_code == 200 and r.text.startswith('<section id="overview"')
        figures = dict(re.findall(r'data-figure="(\w+)">([^<]+)<', r.text))
        assert figures["store"] == "ok" and figures["outbox"] == "0"
        assert figures["human"] == "0" and int(figures["live"]) >= 0
        assert figures["handoffs"] == "0" and "urgent" not in figures
        assert float(figures["in"]) == 2.0 and float(figures["out"]) == 2.0  # in the last minute
        assert 'href="/conversations?status=ended">ended</a> 1' in r.text
        assert "<strong>2</strong> in all" in r.text


async def test_the_impact_report_with_charts(tmp_path):
    async with serving(tmp_path) as live:
        await live.text("hi")
        await live.text("hey", their="+12065550177")
        await login(live.client, "viewer")
        r = await live.client.get("/reports")
        assert r.status_code == 200
        row = re.search(r'<tr><th scope="row">seattle</th><td>(\d+)</td><td>(\d+)</td>'
                        r"<td>(\d+)</td>", r.text.split("Buyer deterrence")[1])
        assert row is not None and row.groups() == ("2", "2", "4")  # buyers, talks, messages
        assert 'aria-label="Buyer deterrence in seattle: buyers 2, conversations 2, ' \
               'deterrence sent 0"' in r.text
        assert 'width="100.00" height="9" class="bar"' in r.text
        assert "style=" not in r.text and "<script>" not in r.text  # only script src
        r = await live.client.get("/reports", params={"city": "atlanta", "since": "2020-01-01"})
        assert r.status_code == 200 and "Nothing in the store yet" in r.text
        r = await live.client.get("/reports", params={"since": "yesterday"})
        assert r.status_code == 400 and "is not a date (YYYY-MM-DD)" in r.text
        r = await live.client.get("/reports", params={"city": "paris"})
        assert r.status_code == 400
        # return contacts: both buyers' first conversations are still open (not judged yet)
        r = await live.client.get("/reports", params={"period": "all"})
        assert r.status_code == 200
        row = re.search(r'<tr><th scope="row">seattle</th><td>all</td>'
                        r'<td data-returns-deterred="seattle">(\d+)</td>', r.text)
        assert row is not None and row.group(1) == "0"
        assert re.search(r"<td>2</td></tr>\s*</tbody>", r.text.split("<h2>Return contacts</h2>")[1])
        r = await live.client.get("/reports", params={"period": "decade"})
        assert r.status_code == 400 and "is not a period" in r.text


# -- the advocates' inbox and the forms that change hand-offs and campaigns

KIM = "advocate-token-0000000kim"
A, B = "+12065550101", "+12065550102"


async def login_with(client: httpx.AsyncClient, token: str) -> str:
    """Log `client` in with any token; the session's CSRF token."""
    page = await client.get("/login")
    r = await client.post("/login", data={"csrf": CSRF.search(page.text).group(1),
                                          "token": token})
    assert r.status_code == 303, r.text
    return CSRF.search((await client.get("/")).text).group(1)


def inbox_order(text: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-conversation="(\d+)"', text)]


async def test_the_inbox_puts_urgent_first_and_offers_no_one_elses_claim(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted",
                       tokens=TOKENS + f",advocate:{KIM}:kim") as live:
        a = await live.text("human", their=A)
        b = await live.text("urgent", their=B)
        await live.text("hi", their="+12065550104")  # the bot has it: not in the inbox
        csrf = await login(live.client, "advocate")
        figures = dict(re.findall(r'data-figure="(\w+)">([^<]+)<',
                                  (await live.client.get("/overview")).text))
        assert figures["handoffs"] == "2" and figures["urgent"] == "1 urgent"
        r = await live.client.get("/handoffs")
        assert r.status_code == 200 and inbox_order(r.text) == [b, a]
        urgent = r.text.split(f'data-conversation="{b}"')[1].split("</li>")[0]
        assert "URGENT</span>" in urgent and "may be in danger" in urgent  # a word, not a colour
        assert B in urgent and "not claimed" in urgent and "waiting " in urgent
        assert f'action="/conversations/{b}/claim"' in urgent
        r = await live.client.post(f"/conversations/{b}/claim", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == f"/conversations/{b}"
        page = await live.client.get(f"/conversations/{b}")
        assert "You hold it." in page.text and f'action="/conversations/{b}/release"' in page.text

        async with browser(live) as other:
            kims = await login_with(other, KIM)
            r = await other.get("/handoffs")
            assert inbox_order(r.text) == [a]  # sam's claim is not offered to kim
            r = await other.post(f"/conversations/{b}/claim", data={"csrf": kims})
            assert r.status_code == 409
            assert f"Conversation {b}: advocate &#39;sam&#39; has claimed this hand-off" in r.text
            page = await other.get(f"/conversations/{b}")
            assert "sam has claimed this hand-off" in page.text
            assert 'id="reply"' not in page.text and "/claim" not in page.text
            r = await other.post(f"/conversations/{b}/messages",
                                 data={"csrf": kims, "text": "I'm Kim"})
            assert r.status_code == 409
        async with browser(live) as admin:
            await login(admin, "admin")
            r = await admin.get("/handoffs")
            assert inbox_order(r.text) == [b, a] and "claimed by sam" in r.text
        async with browser(live) as viewer:
            await login(viewer, "viewer")
            r = await viewer.get("/handoffs")
            assert inbox_order(r.text) == [b, a]
            assert B not in r.text and A not in r.text and "/claim" not in r.text
            assert "Numbers are masked" in r.text
        rows = live.query("SELECT actor, status, detail FROM audit WHERE action = "
                          "'GET /handoffs' ORDER BY id")
        assert rows[0] == ("sam", 200, "2 of 2 from 0 with full numbers")
        assert ("kim", 200, "1 of 1 from 0 with full numbers") in rows
        assert ("val", 200, "2 of 2 from 0 with masked numbers") in rows
        rows = live.query("SELECT actor, status, conversation_id, detail FROM audit WHERE "
                          "action = 'POST /conversations/{id}/claim' ORDER BY id")
        assert rows[0] == ("sam", 200, b, "claimed; was unclaimed, priority urgent")
        assert rows[1][:3] == ("kim", 409, b)


async def test_notes_outcomes_release_assign_and_who_sent_each_reply(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted",
                       tokens=TOKENS + f",advocate:{KIM}:kim") as live:
        b = await live.text("urgent", their=B)
        csrf = await login(live.client, "advocate")
        r = await live.client.post(f"/conversations/{b}/messages",
                                   data={"csrf": csrf, "text": "Hi, this is Sam."})
        assert r.status_code == 303  # texting claims it
        live_part = (await live.client.get(f"/conversations/{b}/live")).text
        assert '<span data-sent-by="sam">sam</span> (advocate)' in live_part
        assert "claimed by you" in live_part and "URGENT" in live_part
        r = await live.client.post(f"/conversations/{b}/notes",
                                   data={"csrf": csrf, "text": "  safe at a friend's  "})
        assert r.status_code == 303
        r = await live.client.post(f"/conversations/{b}/notes", data={"csrf": csrf, "text": ""})
        assert r.status_code == 400 and "A note is 1 to 4000 characters." in r.text
        page = await live.client.get(f"/conversations/{b}")
        assert "safe at a friend&#39;s" in page.text and "Internal notes" in page.text
        r = await live.client.post(f"/conversations/{b}/outcomes",
                                   data={"csrf": csrf, "kind": "connected_to_services",
                                         "note": "shelter tonight"})
        assert r.status_code == 303
        r = await live.client.post(f"/conversations/{b}/outcomes",
                                   data={"csrf": csrf, "kind": "other"})
        assert r.status_code == 400 and "note" in r.text
        r = await live.client.post(f"/conversations/{b}/outcomes",
                                   data={"csrf": csrf, "kind": "bogus"})
        assert r.status_code == 400 and "Choose an outcome" in r.text
        page = await live.client.get(f"/conversations/{b}")
        assert "connected_to_services by sam" in page.text
        r = await live.client.post(f"/conversations/{b}/release", data={"csrf": csrf})
        assert r.status_code == 303
        assert live.query("SELECT claimed_by FROM handoffs WHERE conversation_id = ?",
                          (b,)) == [(None,)]
        async with browser(live) as admin:
            admins = await login(admin, "admin")
            r = await admin.post(f"/conversations/{b}/assign",
                                 data={"csrf": admins, "advocate": "kim"})
            assert r.status_code == 303
            r = await admin.post(f"/conversations/{b}/assign",
                                 data={"csrf": admins, "advocate": "  "})
            assert r.status_code == 400 and "name of the advocate" in r.text
        assert live.query("SELECT claimed_by FROM handoffs WHERE conversation_id = ?",
                          (b,)) == [("kim",)]
        r = await live.client.post(f"/conversations/{b}/release", data={"csrf": csrf})
        assert r.status_code == 409 and "kim" in r.text
        rows = dict(live.query("SELECT action, detail FROM audit WHERE actor IN ('sam', "
                               "'root') AND action LIKE 'POST /conversations/{id}/%' AND "
                               "status < 300"))
        assert rows["POST /conversations/{id}/notes"] == "note of 18 characters"
        assert rows["POST /conversations/{id}/outcomes"] == "outcome connected_to_services"
        assert rows["POST /conversations/{id}/release"].startswith("released; was sam")
        assert rows["POST /conversations/{id}/assign"].startswith("assigned to kim; was")
        every = " ".join(d for (d,) in live.query("SELECT detail FROM audit"))
        assert "friend" not in every and "shelter" not in every and "Hi, this is" not in every


async def test_every_new_form_needs_csrf_and_its_role(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted") as live:
        b = await live.text("urgent", their=B)
        forms = [(f"/conversations/{b}/claim", {}, "advocate"),
                 (f"/conversations/{b}/release", {}, "advocate"),
                 (f"/conversations/{b}/assign", {"advocate": "sam"}, "admin"),
                 (f"/conversations/{b}/notes", {"text": "n"}, "advocate"),
                 (f"/conversations/{b}/outcomes", {"kind": "positive_conversation"},
                  "advocate"),
                 ("/campaigns/start", {"name": "spring"}, "admin"),
                 ("/campaigns/pause", {"name": "spring"}, "admin")]
        admin_csrf = await login(live.client, "admin")
        for path, data, _ in forms:
            r = await live.client.post(path, data=data)
            assert r.status_code == 403 and "CSRF token" in r.text, path
            r = await live.client.post(path, data={**data, "csrf": admin_csrf[:-2] + "xx"})
            assert r.status_code == 403, path
        for role in ("viewer", "advocate"):
            async with browser(live) as client:
                csrf = await login(client, role)
                for path, data, needs in forms:
                    if role == "advocate" and needs == "advocate":
                        continue
                    r = await client.post(path, data={**data, "csrf": csrf})
                    assert r.status_code == 403 and f"needs the {needs} role" in r.text, path
        assert live.query("SELECT claimed_by FROM handoffs") == [(None,)]
        assert live.query("SELECT count(*) FROM handoff_notes") == [(0,)]
        assert live.query("SELECT count(*) FROM advocate_outcomes") == [(0,)]
        assert live.query("SELECT count(*) FROM audit WHERE action LIKE 'POST /c%'") == [(0,)]


async def test_admins_start_and_pause_campaigns_through_the_apis_path(tmp_path):
    async with campaign_server(tmp_path, ["+12065550141"]) as (server, base):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            csrf = await login(client, "admin")
            page = await client.get("/campaigns")
            assert 'action="/campaigns/start"' in page.text and "Start spring" in page.text
            r = await client.post("/campaigns/start", data={"csrf": csrf, "name": "spring"})
            assert r.status_code == 303 and r.headers["location"] == "/campaigns"
            page = await client.get("/campaigns")
            assert "state-running" in page.text and "Pause spring" in page.text
            r = await client.post("/campaigns/pause", data={"csrf": csrf, "name": "spring"})
            assert r.status_code == 303
            assert "Resume spring" in (await client.get("/campaigns")).text
            r = await client.post("/campaigns/start", data={"csrf": csrf, "name": "autumn"})
            assert r.status_code == 404 and "autumn" in r.text
            r = await client.post("/campaigns/start", data={"csrf": csrf, "name": ""})
            assert r.status_code == 400
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await login(client, "advocate")
            page = await client.get("/campaigns")
            assert "/campaigns/start" not in page.text and "need the admin role" in page.text
        rows = server.store.query("SELECT actor, action, status, detail FROM audit WHERE "
                                  "action LIKE 'POST /campaigns/%' ORDER BY id")
        assert rows[:2] == [("root", "POST /campaigns/start", 200,
                             "campaign spring: was idle, now running"),
                            ("root", "POST /campaigns/pause", 200,
                             "campaign spring: was running, now paused")]
        assert rows[2][:3] == ("root", "POST /campaigns/start", 404)


async def test_the_inbox_streams_counts_never_numbers_or_words(tmp_path):
    async with serving(tmp_path, reg=scripted_registry(), scenario="scripted") as live:
        await live.text("human", their=A)
        await login(live.client, "advocate")
        async with live.client.stream("GET", "/handoffs/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()

            async def next_counts() -> dict[str, int]:
                with trio.fail_after(10):
                    async for line in lines:
                        assert "event: changed" not in line  # no conversation here
                        if line.startswith("data: {"):
                            return json.loads(line.removeprefix("data: "))
                raise AssertionError("the stream ended")

            assert await next_counts() == {"open": 1, "urgent": 0, "unclaimed": 1, "new": 0,
                                           "new_urgent": 0}
            await live.text("urgent", their=B)
            got = await next_counts()
            assert got == {"open": 2, "urgent": 1, "unclaimed": 2, "new": 1, "new_urgent": 1}
        live_page = await live.client.get("/handoffs")
        assert 'data-stream="/handoffs/events"' in live_page.text
        assert 'data-refresh-on="handoffs"' in live_page.text


def test_the_queue_watch_says_what_is_new_and_newly_urgent():
    watch = QueueWatch()
    first = watch.look([OpenHandoff(1, "normal", None, False)])
    assert b'"open":1' in first and b'"new":0' in first
    assert watch.look([OpenHandoff(1, "normal", None, False)]) == b""  # nothing changed
    raised = watch.look([OpenHandoff(1, "urgent", None, False),
                         OpenHandoff(2, "normal", None, False)])
    assert json.loads(raised.split(b"data: ")[1]) == {
        "open": 2, "urgent": 1, "unclaimed": 2, "new": 1, "new_urgent": 1}
    claimed = watch.look([OpenHandoff(1, "urgent", "sam", False),
                          OpenHandoff(2, "normal", None, False)])
    assert b'"unclaimed":1' in claimed and b'"new":0,"new_urgent":0' in claimed


def test_the_pages_number_index_follows_a_reload():
    """A reload replaces the running config's [[numbers]] and [cities] in place: the console's
    city filters and labels follow without a restart."""
    import msgspec

    from intercept.config import load_config
    from intercept.console.numbers import NumberIndex
    from intercept.foundation.resources import bundled_root

    config = load_config(bundled_root() / "config" / "intercept.toml")
    index = NumberIndex(config)
    assert set(index.city_of) == {n.number for n in config.numbers}
    first = config.numbers[0]
    config.take_numbers(msgspec.structs.replace(config, numbers=[first]))
    assert index.city_of == {first.number: first.city}
    assert index.kind_of == {first.number: first.kind}


def _table(html: str) -> dict[str, tuple[int, dict[str, int]]]:
    """The state table: each state's reached count and times taken by target (a target's ways
    out all show the count of moves to it)."""
    rows: dict[str, tuple[int, dict[str, int]]] = {}
    for name, reached, ways in re.findall(
            r'<tr id="state-([^"]+)">.*?data-reached="[^"]+">(\d+)<.*?<ul class="ways">(.*?)</ul>',
            html, re.S):
        rows[name] = (int(reached), {name if target == "(stays)" else target: int(n)
                                     for target, n in re.findall(
            r"<li>.*? → (\S+) <strong>(\d+)</strong></li>", ways)})
    return rows


async def test_the_scenario_page_draws_the_state_diagram_with_the_tables_counts(tmp_path):
    machine = shipped().current("buyer-deterrence")
    assert machine is not None
    async with serving(tmp_path, reg=shipped(), scenario="buyer-deterrence") as live:
        await live.text("hi")
        await live.text("how much", their="+12065550177")
        await live.text("hey there", their="+12065550178")
        await login(live.client, "viewer")
        r = await live.client.get("/scenarios/buyer-deterrence")
    assert r.status_code == 200
    html = r.text
    svg = re.search(r"<svg [^>]*role=\"img\"[^>]*>.*?</svg>", html, re.S)
    assert svg is not None and html.index("<svg") < html.index('<table class="list states">')
    drawing = svg.group(0)
    label = re.search(r'aria-label="([^"]+)"', drawing)
    assert label and f"{len(machine.nodes)} states" in label.group(1)
    assert f"starting at {machine.start}" in label.group(1)
    assert '<marker id="arrow"' in drawing and "marker-end=\"url(#arrow)\"" in drawing
    # one box per state, the start marked, ends styled apart
    boxes = re.findall(r'<g class="([^"]+)" data-state="([^"]+)">', drawing)
    by_name = {name: classes.split() for classes, name in boxes}
    assert set(by_name) == set(machine.nodes) and len(boxes) == len(machine.nodes)
    assert "start" in by_name[machine.start]
    assert sum("start" in c for c in by_name.values()) == 1 and 'class="start-marker"' in drawing
    assert {n for n, c in by_name.items() if "terminal" in c} == {
        n for n, node in machine.nodes.items() if node.kind == "end"} != set()
    # the counts are the table's
    table = _table(html)
    assert set(table) == set(machine.nodes)
    shown = dict(re.findall(r'data-box-reached="([^"]+)">(\d+) reached<', drawing))
    assert {n: int(v) for n, v in shown.items()} == {n: row[0] for n, row in table.items()}
    assert table[machine.start][0] == 3
    taken = re.findall(r'data-taken="([^"→]+)→([^"]+)">(\d+)<', drawing)
    assert len(taken) >= len(machine.nodes) - 1
    for source, target, count in taken:
        assert table[source][1][target] == int(count), (source, target)
    assert sum(int(c) for s, _, c in taken if s == machine.start) == 3
    assert ' style="' not in html and "<style" not in html  # the CSP: classes only


async def test_the_diagram_escapes_what_authors_wrote_and_has_a_cap(tmp_path):
    from itertools import pairwise

    from intercept.console.config_pages import DIAGRAM_LIMIT
    from intercept.engine.machine import END, GOTO, Machine, Node
    from intercept.scenarios import ScenarioRegistry

    def chain(name: str, states: list[str]) -> Machine:
        nodes = {s: Node(s, GOTO, goto=n) for s, n in pairwise(states)}
        nodes[states[-1]] = Node(states[-1], END, end="finished")
        return Machine(name, 1, states[0], nodes)

    hostile = chain("hostile", ["<script>alert(1)</script>", 'a"b&c', "done"])
    big = chain("big", [f"s{i}" for i in range(DIAGRAM_LIMIT + 1)])
    most = chain("most", [f"s{i}" for i in range(DIAGRAM_LIMIT)])
    reg = ScenarioRegistry([hostile, big, most])
    async with serving(tmp_path, reg=reg, scenario="most") as live:
        await login(live.client, "viewer")
        r = await live.client.get("/scenarios/hostile")
        assert r.status_code == 200 and "<svg" in r.text
        assert "<script>alert" not in r.text and 'a"b' not in r.text
        assert 'data-state="&lt;script&gt;alert(1)&lt;/script&gt;"' in r.text
        assert "starting at &lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        assert 'data-state="a&#34;b&amp;c"' in r.text
        r = await live.client.get("/scenarios/big")
        assert r.status_code == 200 and "<svg" not in r.text
        assert f"more than the {DIAGRAM_LIMIT} a diagram is drawn for" in r.text
        assert r.text.count('<tr id="state-') == DIAGRAM_LIMIT + 1  # the table is still there
        assert len(r.content) < 200_000
        r = await live.client.get("/scenarios/most")
        assert r.status_code == 200 and r.text.count('data-state="') == DIAGRAM_LIMIT
        assert len(r.content) < 400_000
