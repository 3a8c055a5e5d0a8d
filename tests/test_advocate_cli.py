"""`intercept advocate ...` against a server served in a thread, over its HTTP API."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import trio
from click.testing import CliRunner

from intercept.cli.advocate import advocate
from intercept.cli.options import base_url
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import (
    ADMIN,
    ADVOCATE,
    BUYER,
    OUR,
    TOKENS,
    VIEWER,
    make_config,
    scripted_registry,
    serve_in_thread,
)


@pytest.fixture
def live(tmp_path):
    """A running server (scripted scenario: "human" hands off) and its base URL."""
    config = make_config("scripted", http={"enabled": True, "listen": "127.0.0.1:0"},
                         api={"tokens": TOKENS})
    server = Server(config, registry=scripted_registry(), gateway=SimGateway(),
                    store_path=tmp_path / "cli.db")
    thread, token = serve_in_thread(server)
    (base,) = server.http_addresses
    try:
        yield server, base
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return CliRunner().invoke(advocate, list(args), env=env, input=stdin)


def hand_off(base: str, text: str = "human", their: str = BUYER) -> int:
    """A person texts; wait until the scenario has handed the conversation off."""
    r = httpx.post(f"{base}/sim/messages", json={"from": their, "to": OUR, "text": text})
    cid = r.json()["conversation_id"]
    headers = {"Authorization": f"Bearer {ADMIN}"}
    for _ in range(500):
        detail = httpx.get(f"{base}/api/conversations/{cid}", headers=headers).json()
        if detail["conversation"]["status"] == "handed_off":
            return cid
        time.sleep(0.01)
    raise AssertionError("the conversation was not handed off")


def test_an_advocate_works_a_conversation_from_the_shell(live):
    server, base = live
    cid = hand_off(base)
    as_sam = ["--url", base, "--token", ADVOCATE]
    result = run("queue", *as_sam)
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == ["ID", "WAITING", "NEW", "STATUS", "CITY", "NUMBER", "OUTCOMES"]
    assert row.split()[0] == str(cid) and row.split()[2:] == ["0", "handed_off", "seattle",
                                                              BUYER, "-"]
    result = run("reply", str(cid), "Hi, this is Sam. Are you safe to talk?", *as_sam)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Sent to conversation {cid} (message {cid}.op.1 queued)")
    result = run("reply", str(cid), "-", *as_sam, stdin="We can meet at 10.\n")
    assert result.exit_code == 0, result.output
    result = run("outcome", str(cid), "meeting_scheduled", "--note", "Tue 10am", *as_sam)
    assert result.output == f"Recorded meeting_scheduled on conversation {cid} (outcome 1).\n"
    result = run("show", str(cid), *as_sam)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"Conversation {cid}: {BUYER} texting {OUR} (seattle); handed_off, "
                        "taken over by a human; scenario scripted v1")
    assert lines[1].startswith("Outcome: meeting_scheduled by sam at ")
    assert lines[1].endswith(": Tue 10am")
    said = [re.split(r"\s{2,}", line, maxsplit=2)[1:] for line in lines[3:]]
    assert [w for w, _ in said] == ["them", "bot", "human", "human"]
    assert said[0][1] == "human" and said[2][1].startswith("Hi, this is Sam.")
    assert said[3][1].startswith("We can meet at 10.")
    result = run("queue", "--json", *as_sam)
    assert '"meeting_scheduled"' in result.output
    result = run("handback", str(cid), *as_sam)
    assert result.output == f"Conversation {cid} is back with the bot.\n"
    result = run("handback", str(cid), "--url", base, env={"INTERCEPT_API_TOKEN": ADVOCATE})
    assert result.exit_code == 1
    assert "is not with a human" in result.output
    rows = server.store.query("SELECT actor, action, status FROM audit ORDER BY id")
    assert ("sam", "POST /api/conversations/{id}/hand-back", 200) in rows


def test_clear_errors(live, tmp_path):
    _, base = live
    cid = hand_off(base)
    nowhere = {"INTERCEPT_STORE_PATH": str(tmp_path / "elsewhere.db")}  # no credential file
    result = run("queue", "--url", base, env=nowhere)
    assert result.exit_code == 1
    assert "no API token: give one with --token or INTERCEPT_API_TOKEN" in result.output
    assert "elsewhere.db.cli-token" in result.output
    result = run("queue", "--url", base, "--token", "wrong-token-wrong-token")
    assert ("the server refused the token from --token or INTERCEPT_API_TOKEN: the token is "
            "not valid.") in result.output
    result = run("reply", str(cid), "hello", "--url", base, "--token", VIEWER)
    assert result.exit_code == 1
    assert "not allowed: this needs the advocate role; the token 'val' has the viewer role" in (
        result.output)
    result = run("show", "999", "--url", base, "--token", VIEWER)
    assert result.exit_code == 1 and "Error: no conversation 999" in result.output
    result = run("outcome", str(cid), "other", "--url", base, "--token", ADVOCATE)
    assert result.exit_code == 1 and "needs a note" in result.output
    result = run("outcome", str(cid), "won", "--url", base, "--token", ADVOCATE)
    assert result.exit_code == 2 and "'won' is not one of" in result.output
    result = run("queue", "--url", base, "--token", VIEWER, "--json")
    assert result.exit_code == 0 and "•" in result.output  # the viewer sees masked numbers


def test_no_server_answers():
    result = run("queue", "--url", "http://127.0.0.1:9", "--token", ADVOCATE)
    assert result.exit_code == 1
    assert "no server answers at http://127.0.0.1:9" in result.output
    assert "is 'intercept serve' running" in result.output


def test_the_url_comes_from_the_config(tmp_path):
    assert base_url("0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert base_url("[::]:8080") == "http://[::1]:8080"
    assert base_url("10.0.0.5:9000") == "http://10.0.0.5:9000"
    config = tmp_path / "c.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:9"\n')
    result = run("queue", "--config", str(config), "--token", ADVOCATE)
    assert "no server answers at http://127.0.0.1:9" in result.output


@pytest.mark.parametrize("command", ["queue", "show", "reply", "handback", "outcome",
                                     "handoffs", "claim", "release", "assign", "notes"])
def test_every_command_has_examples(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output
    assert "Examples:" in run("--help").output


HOSTILE = "look \x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07 \u202egpj.exe\x9b31m done"


def test_escape_sequences_a_buyer_sends_never_reach_the_terminal(live):
    _, base = live
    cid = hand_off(base)
    r = httpx.post(f"{base}/sim/messages", json={"from": BUYER, "to": OUR, "text": HOSTILE})
    assert r.status_code == 200, r.text
    as_sam = ["--url", base, "--token", ADVOCATE]
    result = run("show", str(cid), *as_sam)
    assert result.exit_code == 0, result.output
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in result.output
    assert ("look \\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07 \\u202egpj.exe\\x9b31m done"
            in result.output)
    result = run("show", str(cid), "--json", *as_sam)
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert HOSTILE in [line["text"] for line in json.loads(result.output)["transcript"]]


def test_the_inbox_from_the_shell(live):
    _, base = live
    first = hand_off(base)
    urgent = hand_off(base, "urgent", their="+12065550177")
    as_sam = ["--url", base, "--token", ADVOCATE]
    result = run("handoffs", *as_sam)
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["ID", "PRIORITY", "WAITING", "CLAIMED", "BY", "CITY", "NUMBER",
                              "NOTES", "REASON"]
    assert [r.split()[:2] for r in rows] == [[str(urgent), "URGENT"], [str(first), "normal"]]
    assert rows[0].split()[3:7] == ["-", "seattle", "+12065550177", "0"]
    assert rows[0].endswith("may be in danger")
    result = run("claim", str(urgent), *as_sam)
    assert result.output == f"Conversation {urgent}'s urgent hand-off is yours.\n"
    result = run("claim", str(urgent), "--url", base, "--token", ADMIN)
    assert result.exit_code == 1 and "advocate 'sam' has claimed this hand-off" in result.output
    result = run("notes", str(urgent), "safe to text after 6pm", *as_sam)
    assert result.output == f"Noted on conversation {urgent} (note 1).\n"
    result = run("notes", str(urgent), *as_sam)
    assert result.output.endswith("  sam: safe to text after 6pm\n")
    assert run("handoffs", *as_sam).output.splitlines()[1].split()[3] == "sam"
    result = run("reply", str(urgent), "Hi, this is Sam. Are you somewhere safe?", *as_sam)
    assert result.exit_code == 0, result.output
    shown = run("show", str(urgent), *as_sam).output
    assert "Are you somewhere safe?  (sent by sam)" in shown
    assert "answered" in run("handoffs", *as_sam).output.splitlines()[1]
    result = run("release", str(urgent), *as_sam)
    assert result.output == f"Conversation {urgent}'s urgent hand-off is back in the queue.\n"
    result = run("assign", str(urgent), "sam", *as_sam)
    assert result.exit_code == 1 and "needs the admin role" in result.output
    result = run("assign", str(urgent), "sam", "--url", base, "--token", ADMIN)
    assert result.output == f"Conversation {urgent}'s urgent hand-off is now sam's.\n"
    assert run("notes", str(first), *as_sam).output == f"No notes on conversation {first}.\n"
    result = run("handoffs", "--json", "--url", base, "--token", VIEWER)
    assert result.exit_code == 0 and "•" in result.output
