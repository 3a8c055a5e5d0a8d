"""A reload takes the config file's [[numbers]] and [cities] too, all or nothing, with the
simulator gateway: an added number answers (also what waited for it), an invalid file or one
that changes what only a restart can is refused and the running config keeps working, and a
removed number starts no new conversation while its live ones go on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.config import load_config
from intercept.errors import ConfigError
from intercept.foundation.phone import mask
from intercept.gateways import SimGateway
from intercept.runtime.config_reload import NumbersChange, restart_only
from intercept.server import Server

from helpers import Phones, serve_in_thread

OURS, ADDED = "+12065550100", "+12065550101"
BUYER, OTHER = "+12065550199", "+12065550198"

ECHO = """
name: echo
version: 1
start: wait
states:
  wait:
    expect:
      - otherwise: true
        goto: reply
  reply:
    say: "{persona.name} in {city.name}: {message}"
    goto: wait
"""


def number(e164: str, persona: str, city: str = "seattle") -> str:
    return (f'[[numbers]]\nnumber = "{e164}"\ncity = "{city}"\nscenario = "echo"\n'
            f'persona = {{ name = "{persona}" }}\n')


def config_file(tmp_path: Path, *numbers: str, city: str = "Seattle",
                listen: str = "127.0.0.1:8080") -> Path:
    path = tmp_path / "intercept.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'intercept.db'}"
[http]
enabled = false
listen = "{listen}"
[delays]
enabled = false
[health]
interval = "1h"
[handoffs]
interval = "1h"
[scenarios]
dir = "{tmp_path / 'scenarios'}"
[cities.seattle]
name = "{city}"
link = "https://help.example/sea"
""" + "".join(numbers))
    return path


class Running:
    def __init__(self, server: Server, phones: Phones):
        self.server, self.phones = server, phones

    async def text(self, body: str, *, their: str = BUYER, ours: str = OURS,
                   waits: bool = False) -> None:
        """Text one of our numbers and wait for the answer (with `waits`: a second, as a
        message to a number not in the config is committed but never answered)."""
        done = await self.server.gateway.inject(their_number=their, our_number=ours, text=body)
        if waits:
            await trio.sleep(1)
        else:
            await self.server.settled(done.conversation_id, done.conv_seq)


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Running]:
    """A server on a config file of one number (Jasmine in Seattle) and the echo scenario."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "echo.yaml").write_text(ECHO)
    config = load_config(config_file(tmp_path, number(OURS, "Jasmine")), environ={})
    gateway = SimGateway(receipts=False)
    phones = Phones(gateway)
    server = Server(config, gateway=gateway, threaded_store=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield Running(server, phones)
        server.stop()


async def test_a_number_added_by_a_reload_answers_and_takes_what_waited(tmp_path, autojump_clock):
    async with serving(tmp_path) as running:
        server, phones = running.server, running.phones
        await running.text("early", their=OTHER, ours=ADDED, waits=True)  # not ours yet: it waits
        assert phones.by_number[OTHER] == []
        config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla"))
        reloaded = await server.reload()
        assert reloaded.numbers.added == [ADDED]
        assert reloaded.summary() == ("no changes (1 scenarios loaded); numbers: 1 added "
                                      f"(added {mask(ADDED)})")
        assert "5550101" not in reloaded.summary()
        await trio.sleep(1)
        assert phones.by_number[OTHER] == ["Kayla in Seattle: early"]
        await running.text("hello", ours=ADDED)
        assert phones.by_number[BUYER] == ["Kayla in Seattle: hello"]
        kinds = server.store.query("SELECT kind, city FROM number_kinds WHERE number = ?", (ADDED,))
        assert kinds == [("buyer", "seattle")]


async def test_new_conversations_take_a_changed_persona_and_city_live_ones_keep_theirs(
        tmp_path, autojump_clock):
    async with serving(tmp_path) as running:
        server, phones = running.server, running.phones
        await running.text("one")
        config_file(tmp_path, number(OURS, "Mia"), city="Seattle WA")
        reloaded = await server.reload()
        assert (reloaded.numbers.changed, reloaded.numbers.cities) == ([OURS], ["seattle"])
        await running.text("two")
        await running.text("three", their=OTHER)
        assert phones.by_number[BUYER] == ["Jasmine in Seattle: one", "Jasmine in Seattle: two"]
        assert phones.by_number[OTHER] == ["Mia in Seattle WA: three"]


async def test_an_invalid_file_is_refused_and_the_old_config_keeps_working(tmp_path,
                                                                          autojump_clock):
    async with serving(tmp_path) as running:
        server, phones = running.server, running.phones
        path = config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla",
                                                                       city="nowhere"))
        with pytest.raises(ConfigError, match=r"numbers\[1\]\.city: unknown city 'nowhere'"):
            await server.reload()
        path.write_text(path.read_text() + "\n[[numbers\n")
        with pytest.raises(ConfigError, match="invalid TOML"):
            await server.reload()
        config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla"),
                    listen="127.0.0.1:9999")
        with pytest.raises(ConfigError) as refused:
            await server.reload()
        assert str(refused.value) == (
            f"{path}: http.listen changed; a running server takes only [[numbers]] and [cities] "
            "from the file (the rest at a restart): reload refused, the running config and "
            "scenario versions stay")
        assert server.config.number(ADDED) is None
        assert server.store.query("SELECT count(*) FROM number_kinds WHERE number = ?",
                                  (ADDED,)) == [(0,)]
        await running.text("still there")
        assert phones.by_number[BUYER] == ["Jasmine in Seattle: still there"]


async def test_a_removed_number_starts_nothing_new_and_its_live_conversations_go_on(
        tmp_path, autojump_clock):
    async with serving(tmp_path) as running:
        server, phones = running.server, running.phones
        config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla"))
        await server.reload()
        await running.text("before", ours=ADDED)
        config_file(tmp_path, number(OURS, "Jasmine"))
        reloaded = await server.reload()
        assert reloaded.numbers.removed == [ADDED]
        await running.text("after", ours=ADDED)  # a live conversation: answered as before
        # a new one waits, unanswered
        await running.text("new", their=OTHER, ours=ADDED, waits=True)
        assert phones.by_number[BUYER] == ["Kayla in Seattle: before", "Kayla in Seattle: after"]
        assert phones.by_number[OTHER] == []
        config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla"))
        await server.reload()  # added again: what waited is answered
        await trio.sleep(1)
        assert phones.by_number[OTHER] == ["Kayla in Seattle: new"]


async def test_an_outreach_number_cannot_become_a_buyer_number_on_reload(tmp_path, autojump_clock):
    async with serving(tmp_path) as running:
        server = running.server
        outreach = number(ADDED, "Maya") + 'kind = "outreach"\n'
        config_file(tmp_path, number(OURS, "Jasmine"), outreach)
        await server.reload()
        config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Maya"))
        with pytest.raises(ConfigError, match="cannot become a buyer number"):
            await server.reload()
        assert server.config.number(ADDED).kind == "outreach"


def test_what_only_a_restart_changes_is_named(tmp_path):
    (tmp_path / "scenarios").mkdir()
    old = load_config(config_file(tmp_path, number(OURS, "Jasmine")), environ={})
    new = load_config(config_file(tmp_path, number(OURS, "Mia"), number(ADDED, "Kayla"),
                                  listen="0.0.0.0:80"),
                      environ={"INTERCEPT_GATEWAY_URL": "smpp://sys:pw@smsc.example:2775",
                               "INTERCEPT_STORE_PATH": "/elsewhere.db"})
    assert restart_only(old, new) == ["gateway.url", "http.listen", "store.path"]
    rated = load_config(config_file(tmp_path, number(OURS, "Jasmine") + "rate = 2\n"),
                        environ={})
    assert restart_only(old, rated) == ["numbers[0].rate"]


def test_the_api_and_the_cli_report_and_refuse_a_config_reload(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "echo.yaml").write_text(ECHO)
    path = config_file(tmp_path, number(OURS, "Jasmine"), listen="127.0.0.1:0")
    path.write_text(path.read_text().replace("enabled = false", "enabled = true", 1))
    server = Server(load_config(path, environ={}), gateway=SimGateway())
    thread, token = serve_in_thread(server)
    env = {"INTERCEPT_CONFIG": str(path)}
    try:
        (base,) = server.http_addresses
        headers = {"Authorization": "Bearer " + (tmp_path / "intercept.db.cli-token")
                   .read_text().strip()}
        path.write_text(path.read_text() + number(ADDED, "Kayla"))
        answer = httpx.post(f"{base}/api/scenarios/reload", headers=headers).json()
        assert answer["numbers"] == {"added": 1, "removed": 0, "changed": 0, "cities": []}
        assert answer["summary"].endswith(f"numbers: 1 added (added {mask(ADDED)})")
        sent = httpx.post(f"{base}/sim/messages", json={"from": BUYER, "to": ADDED,
                                                         "text": "hi"})
        assert sent.status_code == 200, sent.text
        path.write_text(path.read_text().replace('interval = "1h"', 'interval = "2h"', 1))
        result = CliRunner().invoke(main, ["scenario", "reload", "--url", base], env=env)
        assert result.exit_code == 1
        assert "health.interval changed; a running server takes only [[numbers]]" in (
            result.output)
        assert "reload refused: the running versions stay live" in result.output
        assert server.config.number(ADDED) is not None
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)


def test_the_summary_masks_numbers_and_names_a_few():
    added = [f"+1206555{1000 + i}" for i in range(7)]
    change = NumbersChange(added=added, removed=["+12065550100"], cities=["seattle"])
    assert change.summary() == (
        "numbers: 7 added, 1 removed (added +1••••••••00, +1••••••••01, +1••••••••02, "
        "+1••••••••03, +1••••••••04 and 2 more; removed +1••••••••00); cities changed: seattle")
    assert NumbersChange().summary() == "numbers and cities unchanged"


async def test_sighup_logs_a_refused_config_reload_and_prints_a_taken_one(
        tmp_path, autojump_clock, caplog, capsys):
    from intercept.cli.serve import _reload_on_hangup

    async with serving(tmp_path) as running:
        path = config_file(tmp_path, number(OURS, "Jasmine"), number(ADDED, "Kayla"),
                           listen="127.0.0.1:9999")
        await _reload_on_hangup(running.server)
        assert "config reload refused; the running config and scenario versions stay" in (
            caplog.text)
        assert "http.listen changed" in caplog.text
        path.write_text(path.read_text().replace("127.0.0.1:9999", "127.0.0.1:8080"))
        await _reload_on_hangup(running.server)
        assert capsys.readouterr().err == (
            "intercept: scenarios reloaded: no changes (1 scenarios loaded); numbers: 1 added "
            f"(added {mask(ADDED)})\n")
