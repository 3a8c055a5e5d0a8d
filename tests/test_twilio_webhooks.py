"""Signed webhooks of the Twilio gateway, checked with Twilio's own RequestValidator."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio
from twilio.request_validator import RequestValidator

from intercept.gateways.twilio import TwilioGateway, TwilioSettings
from intercept.gateways.twilio.signature import compute_signature, valid_signature
from intercept.server import Server

from helpers import OUR, make_config, registry

SID = "AC" + "0" * 32
TOKEN = "12345678901234567890123456789012"
BUYER = "+12065550199"
validator = RequestValidator(TOKEN)


class Provider:
    """An httpx MockTransport standing in for the REST API: records sends, answers 201."""

    def __init__(self) -> None:
        self.sent: list[dict[str, list[str]]] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
        form = parse_qs(request.content.decode())
        self.sent.append(form)
        return httpx.Response(201, json={"sid": f"SM{len(self.sent):032d}", "status": "queued"})


def test_the_signature_is_twilios(tmp_path):
    url = "https://intercept.example.org/webhooks/twilio/messages?x=1"
    params = {"Body": "hi 💬 there", "From": BUYER, "To": OUR, "NumMedia": "0",
              "MessageSid": "SM1", "Empty": ""}
    ours = compute_signature(TOKEN, url, params.items())
    assert ours == validator.compute_signature(url, params)
    assert valid_signature(TOKEN, url, params.items(), ours)
    # Twilio may sign with or without the default port
    with_port = validator.compute_signature(
        "https://intercept.example.org:443/webhooks/twilio/messages?x=1", params)
    assert valid_signature(TOKEN, url, params.items(), with_port)
    assert not valid_signature(TOKEN, url, [*params.items(), ("Extra", "1")], ours)
    assert not valid_signature(TOKEN, url.replace("x=1", "x=2"), params.items(), ours)
    assert not valid_signature("another token", url, params.items(), ours)
    assert not valid_signature(TOKEN, url, params.items(), None)
    assert not valid_signature(TOKEN, url, params.items(), "")


async def start(nursery: trio.Nursery, tmp_path, provider: Provider) -> tuple[Server, str]:
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0"})
    gateway = TwilioGateway(TwilioSettings(account_sid=SID, auth_token=TOKEN,
                                           api_url="https://api.twilio.test"),
                            transport=provider.transport)
    server = Server(config, registry=registry(), gateway=gateway, store_path=tmp_path / "t.db")
    await nursery.start(server.run)
    (address,) = server.http_addresses
    return server, address


def inbound(sid: str, text: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": SID, "From": BUYER, "To": OUR,
            "Body": text, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01", **extra}


async def post_signed(client: httpx.AsyncClient, base: str, path: str, params: dict[str, str],
                      *, signed_url: str | None = None, signature: str | None = None,
                      body: dict[str, str] | None = None) -> httpx.Response:
    url = f"{base}{path}"
    headers = {}
    if signature != "":
        headers["X-Twilio-Signature"] = signature or validator.compute_signature(
            signed_url or url, params)
    return await client.post(url, data=body if body is not None else params, headers=headers)


async def wait_until(predicate, *, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_a_signed_message_is_processed_once_and_answered(tmp_path):
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            r = await post_signed(client, base, "/webhooks/twilio/messages", inbound("SM1", "hi"))
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/xml")
            assert "<Response>" in r.text
            # the answer came after the commit: the row is there already
            assert server.store.query("SELECT gateway, gateway_id, body FROM inbound") == [
                ("twilio", "SM1", "hi")]
            await wait_until(lambda: len(provider.sent) == 1)
        sent = provider.sent[0]
        assert sent["To"] == [BUYER] and sent["From"] == [OUR] and sent["Body"] == ["re: hi"]
        callback = urlsplit(sent["StatusCallback"][0])
        assert f"{callback.scheme}://{callback.netloc}" == base
        assert callback.path == "/webhooks/twilio/status"
        (outbox_id,) = server.store.query("SELECT id FROM outbox")[0]
        assert parse_qs(callback.query) == {"outbox": [outbox_id]}
        await wait_until(lambda: server.store.query("SELECT status FROM outbox") == [("sent",)])
        server.stop()


@pytest.mark.parametrize("attack", ["tampered body", "wrong url", "missing header",
                                    "wrong token"])
async def test_a_bad_signature_gets_403_and_nothing_is_stored(tmp_path, attack):
    provider = Provider()
    params = inbound("SM9", "hello")
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            if attack == "tampered body":
                r = await post_signed(client, base, "/webhooks/twilio/messages", params,
                                      body={**params, "Body": "hello!"})
            elif attack == "wrong url":
                r = await post_signed(client, base, "/webhooks/twilio/messages", params,
                                      signed_url="https://elsewhere.example/webhooks/twilio/"
                                                 "messages")
            elif attack == "missing header":
                r = await post_signed(client, base, "/webhooks/twilio/messages", params,
                                      signature="")
            else:
                r = await post_signed(client, base, "/webhooks/twilio/messages", params,
                                      signature=RequestValidator("x" * 32).compute_signature(
                                          f"{base}/webhooks/twilio/messages", params))
            assert r.status_code == 403
            assert "signature" in r.json()["error"].lower()
        await trio.sleep(0.1)
        assert server.store.query("SELECT count(*) FROM inbound") == [(0,)]
        assert server.store.query("SELECT count(*) FROM conversations") == [(0,)]
        assert provider.sent == []
        forbidden = server.metrics.registry.get_sample_value(
            "intercept_webhooks_total", {"kind": "message", "result": "forbidden"})
        assert forbidden == 1.0
        server.stop()


async def test_the_same_message_sid_five_times_makes_one_row_and_one_reply(tmp_path):
    provider = Provider()
    params = inbound("SMdup", "hi")
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            statuses = []

            async def send() -> None:
                r = await post_signed(client, base, "/webhooks/twilio/messages", params)
                statuses.append(r.status_code)

            for _ in range(5):  # one after another (a provider retrying)
                await send()
            async with trio.open_nursery() as burst:  # and all at once (a replay)
                for _ in range(5):
                    burst.start_soon(send)
            assert statuses == [200] * 10
            await wait_until(lambda: len(provider.sent) >= 1)
            await trio.sleep(0.3)
        assert server.store.query("SELECT count(*) FROM inbound") == [(1,)]
        assert len(provider.sent) == 1
        assert server.metrics.registry.get_sample_value(
            "intercept_webhooks_total", {"kind": "message", "result": "duplicate"}) == 9.0
        server.stop()


async def test_status_callbacks_never_go_backwards_and_21610_opts_out(tmp_path):
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            await post_signed(client, base, "/webhooks/twilio/messages", inbound("SM1", "hi"))
            await wait_until(lambda: server.store.query("SELECT status FROM outbox") == [
                ("sent",)])
            ((outbox_id, sid),) = server.store.query("SELECT id, gateway_id FROM outbox")
            path = f"/webhooks/twilio/status?outbox={outbox_id}"

            def status(value: str, **extra: str) -> dict[str, str]:
                return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": value,
                        "SmsStatus": value, "AccountSid": SID, "From": OUR, "To": BUYER,
                        "ApiVersion": "2010-04-01", **extra}

            for value in ("delivered", "sent", "delivered", "queued"):
                r = await post_signed(client, base, path, status(value))
                assert r.status_code == 204
            assert server.store.query("SELECT status FROM outbox") == [("delivered",)]
            r = await post_signed(client, base, path, status("sent"), signature="")
            assert r.status_code == 403
            # the carrier says the buyer opted out: recorded, and nothing more goes out
            r = await post_signed(client, base, path,
                                  status("undelivered", ErrorCode="21610"))
            assert r.status_code == 204
            assert server.store.query("SELECT number, opted_out FROM opt_outs") == [(BUYER, 1)]
            await post_signed(client, base, "/webhooks/twilio/messages", inbound("SM2", "again"))
            await wait_until(lambda: server.store.query(
                "SELECT count(*) FROM outbox WHERE status = 'refused'") == [(1,)])
        assert len(provider.sent) == 1
        server.stop()


async def test_a_status_callback_settles_a_row_whose_answer_was_lost(tmp_path):
    """The row stays 'unknown' after a lost answer; its callback then records the outcome."""
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            await post_signed(client, base, "/webhooks/twilio/messages", inbound("SM1", "hi"))
            await wait_until(lambda: server.store.query("SELECT status FROM outbox") == [
                ("sent",)])
            server.store.query("SELECT 1")
            (outbox_id,) = server.store.query("SELECT id FROM outbox")[0]
            from intercept.store import MarkOutbox

            await server.store.call(MarkOutbox([outbox_id], "unknown", now=0.0))
            server.store.query("SELECT 1")
            r = await post_signed(client, base, f"/webhooks/twilio/status?outbox={outbox_id}",
                                  {"MessageSid": "SMlate", "MessageStatus": "delivered",
                                   "To": BUYER, "From": OUR})
            assert r.status_code == 204
        assert server.store.query("SELECT status FROM outbox") == [("delivered",)]
        server.stop()


async def test_media_urls_are_kept_for_the_fetcher(tmp_path):
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            media = "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME1"
            r = await post_signed(client, base, "/webhooks/twilio/messages",
                                  inbound("MM1", "", NumMedia="1", MediaUrl0=media,
                                          MediaContentType0="image/jpeg"))
            assert r.status_code == 200
        assert server.store.query("SELECT media FROM inbound") == [(json.dumps([media]),)]
        assert server.store.query("SELECT url, status FROM media") == [(media, "pending")]
        server.stop()


async def test_malformed_webhooks_get_a_clear_400(tmp_path):
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            r = await post_signed(client, base, "/webhooks/twilio/messages",
                                  inbound("SM1", "hi", From="not a number"))
            assert r.status_code == 400
            assert r.json() == {"error": "From is not a phone number"}
        assert server.store.query("SELECT count(*) FROM inbound") == [(0,)]
        server.stop()


async def test_a_full_disk_answers_503_with_retry_after_and_the_retry_is_processed(tmp_path):
    provider = Provider()
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        conn = server.store.db.conn
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        async with httpx.AsyncClient(timeout=10) as client:
            for i in range(20):
                sid = f"SMfull{i}"
                r = await post_signed(client, base, "/webhooks/twilio/messages",
                                      inbound(sid, f"{i} " + "x" * 1500))
                if r.status_code != 200:
                    break
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert server.store.query("SELECT count(*) FROM inbound WHERE gateway_id = ?",
                                      (sid,)) == [(0,)]
            conn.execute("PRAGMA max_page_count = 1000000000")  # space comes back
            with trio.fail_after(10):  # the provider retries (the writer's backoff is 2 s)
                while (await post_signed(client, base, "/webhooks/twilio/messages",
                                         inbound(sid, f"{i} " + "x" * 1500))).status_code != 200:
                    await trio.sleep(0.2)
            await wait_until(lambda: len(provider.sent) == i + 1)
        assert sorted(int(s["Body"][0].split()[1]) for s in provider.sent) == list(range(i + 1))
        assert server.metrics.registry.get_sample_value(
            "intercept_webhooks_total", {"kind": "message", "result": "unavailable"}) >= 1
        server.stop()


async def test_a_webhook_replayed_after_a_purge_is_refused(tmp_path):
    provider = Provider()
    params = inbound("SMreplayed", "hi")
    async with trio.open_nursery() as nursery:
        server, base = await start(nursery, tmp_path, provider)
        async with httpx.AsyncClient() as client:
            await post_signed(client, base, "/webhooks/twilio/messages", params)
            await wait_until(lambda: server.store.query("SELECT status FROM outbox")
                             == [("sent",)])
            result = await server.purge("buyer", -1.0)  # every idle conversation
            assert (result.conversations, result.tombstones) == (1, 1)
            r = await post_signed(client, base, "/webhooks/twilio/messages", params)
            assert r.status_code == 200  # acknowledged, so the provider stops retrying
            await trio.sleep(0.3)
        assert server.store.query("SELECT count(*) FROM conversations") == [(0,)]
        assert len(provider.sent) == 1  # no second reply
        assert server.metrics.registry.get_sample_value(
            "intercept_webhooks_total", {"kind": "message", "result": "duplicate"}) == 1.0
        server.stop()
