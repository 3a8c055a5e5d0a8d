"""Scenario reload: all or nothing, live conversations keep their version, none is lost."""

from __future__ import annotations

import httpx
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.errors import ScenarioErrors
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import OUR, Phones, make_config, running, serve_in_thread

TEMPLATE = """
name: echo
version: {version}
start: wait
states:
  wait:
    expect:
      - otherwise: true
        goto: reply
  reply:
    say: "{label}: {{message}}"
    goto: wait
"""


def folder_config(tmp_path, **sections):
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    (folder / "echo.yaml").write_text(TEMPLATE.format(version=1, label="v1"))
    return folder, make_config("echo", scenarios={"dir": str(folder)}, **sections)


async def test_reload_with_a_thousand_live_conversations(tmp_path, autojump_clock):
    folder, config = folder_config(tmp_path, runtime={"hibernate_after": "1h"})
    buyers = [f"+1206555{3000 + i:04d}" for i in range(1000)]
    server = Server(config, gateway=SimGateway(receipts=False), store_path=tmp_path / "r.db",
                    threaded_store=False)
    phones = Phones(server.gateway)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)

        async def text_all(line: str, numbers: list[str]) -> None:
            async def one(their: str) -> None:
                done = await server.gateway.inject(their_number=their, our_number=OUR,
                                                   text=line)
                await server.settled(done.conversation_id, done.conv_seq)

            async with trio.open_nursery() as group:
                for their in numbers:
                    group.start_soon(one, their)

        await text_all("first", buyers)
        assert len(server.router.actors) == 1000
        (folder / "echo.yaml").write_text(TEMPLATE.format(version=2, label="v2"))
        report = await server.reload_scenarios()
        assert report.added == [("echo", 2)]
        await text_all("second", buyers)
        await text_all("hello", ["+12065554000"])
        for their in buyers:
            assert phones.by_number[their] == ["v1: first", "v1: second"], their
        assert phones.by_number["+12065554000"] == ["v2: hello"]
        versions = server.store.query("SELECT version, count(*) FROM conversations GROUP BY 1")
        assert versions == [(1, 1000), (2, 1)]
        server.stop()


async def test_a_broken_or_unversioned_change_is_refused(tmp_path, autojump_clock):
    folder, config = folder_config(tmp_path)
    async with running(tmp_path, config, from_folder=True) as (server, phones):
        (folder / "echo.yaml").write_text(TEMPLATE.format(version=2, label="v2")
                                          .replace("goto: reply", "goto: rpely"))
        try:
            await server.reload_scenarios()
        except ScenarioErrors as exc:
            assert "unknown state 'rpely'" in str(exc)
        else:
            raise AssertionError("a broken scenario was accepted")
        (folder / "echo.yaml").write_text(TEMPLATE.format(version=1, label="changed"))
        try:
            await server.reload_scenarios()
        except ScenarioErrors as exc:
            assert "changed but its version is still 1" in str(exc)
        else:
            raise AssertionError("a change without a new version was accepted")
        (folder / "echo.yaml").unlink()
        try:
            await server.reload_scenarios()
        except ScenarioErrors as exc:
            assert "the config uses scenario 'echo'" in str(exc)
        else:
            raise AssertionError("a reload without a scenario the config uses was accepted")
        done = await server.gateway.inject(their_number="+12065550199", our_number=OUR,
                                           text="still")
        await server.settled(done.conversation_id, done.conv_seq)
        assert phones.all[0].text == "v1: still"


def test_reload_over_http_and_the_cli(tmp_path):
    folder, config = folder_config(tmp_path, http={"enabled": True, "listen": "127.0.0.1:0"})
    server = Server(config, gateway=SimGateway(), store_path=tmp_path / "h.db")
    thread, token = serve_in_thread(server)
    # the CLI on the server's machine finds the admin token the server wrote next to its store
    env = {"INTERCEPT_STORE_PATH": str(tmp_path / "h.db")}
    try:
        (base,) = server.http_addresses
        assert httpx.post(f"{base}/api/scenarios/reload").status_code == 401
        local = (tmp_path / "h.db.cli-token").read_text().strip()
        assert httpx.post(f"{base}/api/scenarios/reload", headers={
            "Authorization": f"Bearer {local}"}).json()["summary"] == (
            "no changes (1 scenarios loaded)")
        (folder / "echo.yaml").write_text(TEMPLATE.format(version=2, label="v2"))
        result = CliRunner().invoke(main, ["scenario", "reload", "--url", base], env=env)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "loaded echo v2; 0 unchanged"
        (folder / "echo.yaml").write_text("name: echo\nversion: 3\nstart: nowhere\nstates: {}\n")
        result = CliRunner().invoke(main, ["scenario", "reload", "--url", base], env=env)
        assert result.exit_code == 1
        assert "reload refused: the running versions stay live" in result.output
        assert server.registry.current("echo").version == 2
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)


def test_reload_cli_says_when_no_server_answers(tmp_path):
    result = CliRunner().invoke(main, ["scenario", "reload", "--url", "http://127.0.0.1:9",
                                       "--token", "some-admin-token-0001"])
    assert result.exit_code == 1
    assert "no server answers at http://127.0.0.1:9" in result.output


async def test_a_change_in_an_included_file_needs_a_new_version(tmp_path, autojump_clock):
    folder, config = folder_config(tmp_path)
    (folder / "shared").mkdir()
    (folder / "shared" / "words.yaml").write_text("intents:\n  hello: [hi, hey]\n")
    (folder / "echo.yaml").write_text(TEMPLATE.format(version=1, label="v1").replace(
        "start: wait", "start: wait\ninclude: [shared/words.yaml]"))
    async with running(tmp_path, config, from_folder=True) as (server, _):
        (folder / "shared" / "words.yaml").write_text("intents:\n  hello: [hi, hey, yo]\n")
        try:
            await server.reload_scenarios()
        except ScenarioErrors as exc:
            assert "changed but its version is still 1" in str(exc)
        else:
            raise AssertionError("a change in an included file was accepted unversioned")
