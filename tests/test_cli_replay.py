"""`intercept scenario replay` and `stats` against a store a real server wrote."""

from __future__ import annotations

import os

import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import OUR, Phones, make_config

ECHO = """
name: echo
version: {version}
start: wait
states:
  wait:
    expect:
      - keywords: [bye]
        goto: done
      - otherwise: true
        goto: reply
  reply:
    say: "{label}: {{message}}"
    goto: wait
  done:
    say: "bye"
    end: finished
"""


def record(tmp_path, lines: list[str], read_limit: int = 1600) -> tuple:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "echo.yaml").write_text(ECHO.format(version=1, label="v1"))
    config = make_config("echo", scenarios={"dir": str(folder)},
                         store={"path": str(tmp_path / "s.db")},
                         runtime={"read_limit": read_limit})

    async def run() -> None:
        server = Server(config, gateway=SimGateway(receipts=False), threaded_store=False)
        Phones(server.gateway)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            for line in lines:
                done = await server.gateway.inject(their_number="+12065550199",
                                                   our_number=OUR, text=line)
                await server.settled(done.conversation_id, done.conv_seq)
            server.stop()

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    config_file = tmp_path / "intercept.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "s.db"}"\n'
                           f'[runtime]\nread_limit = {read_limit}\n')
    return config_file, folder


def test_replay_reads_replies_as_far_as_the_configured_read_limit(tmp_path):
    late_bye = "x" * 300 + " bye"  # past a read_limit of 200: not a goodbye
    config_file, folder = record(tmp_path, [late_bye], read_limit=200)
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "1", "--scenario",
                                       str(folder / "echo.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("identical: 1 buyer messages give the same answers")


def test_replay_shows_where_a_new_version_diverges(tmp_path):
    config_file, folder = record(tmp_path, ["hi", "how much", "bye"])
    same = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                     "--conversation", "1", "--scenario",
                                     str(folder / "echo.yaml")])
    assert same.exit_code == 0, same.output
    assert same.output.startswith("identical: 3 buyer messages give the same answers")
    changed = tmp_path / "v2.yaml"
    changed.write_text(ECHO.format(version=2, label="v2"))
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "1", "--scenario", str(changed)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "--- stored (echo v1)" in lines and "+++ replayed (echo v2)" in lines
    assert "-bot:   v1: hi" in lines and "+bot:   v2: hi" in lines
    assert " buyer: bye" in lines
    assert lines[-1] == "outcome: stored finished, replayed finished"


def test_replay_output_escapes_what_the_buyer_sent(tmp_path):
    hostile = "hi \x1b[2J\x1b]52;c;eA==\x07 \u202efdp.exe"
    config_file, _ = record(tmp_path, [hostile, "bye"])
    changed = tmp_path / "v2.yaml"
    changed.write_text(ECHO.format(version=2, label="v2"))
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "1", "--scenario", str(changed)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    shown = " buyer: hi \\x1b[2J\\x1b]52;c;eA==\\x07 \\u202efdp.exe"
    assert shown in result.output.splitlines()


def test_replay_errors_name_what_is_wrong(tmp_path):
    config_file, folder = record(tmp_path, ["hi"])
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "7", "--scenario",
                                       str(folder / "echo.yaml")])
    assert result.exit_code == 1 and "no conversation 7 in the store" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nversion: 1\nstart: a\nstates:\n  a: {goto: b}\n")
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "1", "--scenario", str(broken)])
    assert result.exit_code == 1 and "broken.yaml:5" in result.output
    result = CliRunner().invoke(main, ["scenario", "replay", "--conversation", "1",
                                       "--scenario", str(folder / "echo.yaml"), "--db",
                                       str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no store at" in result.output


def test_stats_counts_conversations_and_outcomes(tmp_path):
    config_file, _ = record(tmp_path, ["hi", "bye"])
    result = CliRunner().invoke(main, ["scenario", "stats", "echo", "--config",
                                       str(config_file)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("echo: 1 conversations (v1: 1)")
    assert "finished" in result.output
    as_json = CliRunner().invoke(main, ["scenario", "stats", "echo", "--json", "--config",
                                        str(config_file)])
    import json

    data = json.loads(as_json.output)
    assert data["versions"] == {"1": 1} and data["outcomes"] == {"finished": 1}
    missing = CliRunner().invoke(main, ["scenario", "stats", "nope", "--config",
                                        str(config_file)])
    assert missing.exit_code == 1 and "no conversations of scenario 'nope'" in missing.output


def test_replay_takes_production_turns_so_an_unrecognised_stop_is_no_divergence(tmp_path):
    """The echo scenario knows nothing of STOP: production drops its "v1: stop pls" answer
    (the runtime's opt-out override), and so does the replay (it used to step the engine alone
    and report a divergence that never happened)."""
    config_file, folder = record(tmp_path, ["hi", "stop pls", "hello"])
    result = CliRunner().invoke(main, ["scenario", "replay", "--config", str(config_file),
                                       "--conversation", "1", "--scenario",
                                       str(folder / "echo.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("identical: 3 buyer messages give the same answers"), (
        result.output)


def test_stats_reads_the_configured_store_not_one_in_the_working_directory(tmp_path,
                                                                           monkeypatch):
    config_file, _ = record(tmp_path, ["hi", "bye"])
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "config").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    for name in list(os.environ):
        if name.startswith("INTERCEPT_"):
            monkeypatch.delenv(name)
    # the project's config (./config/intercept.toml), as other commands find it
    (elsewhere / "config" / "intercept.toml").write_text(config_file.read_text())
    result = CliRunner().invoke(main, ["scenario", "stats", "echo"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("echo: 1 conversations (v1: 1)")
    assert not (elsewhere / "intercept.db").exists()
    # the config named by INTERCEPT_CONFIG
    (elsewhere / "config" / "intercept.toml").unlink()
    monkeypatch.setenv("INTERCEPT_CONFIG", str(config_file))
    result = CliRunner().invoke(main, ["scenario", "stats", "echo"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("echo: 1 conversations (v1: 1)")
    # --db still wins, and a missing store is named
    result = CliRunner().invoke(main, ["scenario", "stats", "echo", "--db",
                                       str(elsewhere / "none.db")])
    assert result.exit_code == 1 and f"no store at {elsewhere / 'none.db'}" in result.output
