"""`intercept chat` through the CLI: a piped buyer reaches the deterrence message."""

from __future__ import annotations

from click.testing import CliRunner

from intercept.cli import main
from intercept.foundation.resources import bundled_root

BUYER = "\n".join([
    "hey is this available",
    "how much",
    "ok 9pm",
    "i'll come to you",
    "are you a cop?",
    "ok sending one",
]) + "\n"


def test_piped_chat_reaches_seattle_deterrence(tmp_path):
    config = bundled_root() / "config" / "intercept.toml"
    result = CliRunner().invoke(main, ["chat", "--config", str(config), "--city", "seattle",
                                       "--fast", "--db", str(tmp_path / "chat.db")],
                                input=BUYER)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "you: hey is this available"
    assert sum(line.startswith("you: ") for line in lines) == 6
    persona = [line for line in lines if line.startswith("Jasmine: ")]
    assert len(persona) >= 6
    assert "law enforcement" in result.output
    assert persona[-1].endswith("https://www.seattleops.org")


def test_chat_refuses_an_unknown_city(tmp_path):
    config = bundled_root() / "config" / "intercept.toml"
    result = CliRunner().invoke(main, ["chat", "--config", str(config), "--city", "paris"],
                                input="hi\n")
    assert result.exit_code == 2
    assert "--city paris: no number for that city; cities: atlanta, seattle, washington-dc" \
        in result.output


def test_chat_to_a_number_that_is_not_ours(tmp_path):
    config = bundled_root() / "config" / "intercept.toml"
    result = CliRunner().invoke(main, ["chat", "--config", str(config), "--to", "+13125550100"],
                                input="hi\n")
    assert result.exit_code == 2
    assert "not one of our numbers" in result.output


def test_invalid_utf8_and_escape_sequences_on_stdin_do_not_crash_or_reach_the_terminal(
        tmp_path):
    config = bundled_root() / "config" / "intercept.toml"
    result = CliRunner().invoke(main, ["chat", "--config", str(config), "--city", "seattle",
                                       "--fast", "--db", str(tmp_path / "chat.db")],
                                input=b"hey \xff\xfe there\nok \x1b[2J\x1b]52;c;eA==\x07\n")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "line 1: not valid UTF-8 (byte 5); sent with the invalid bytes replaced by \ufffd" \
        in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "you: hey \ufffd\ufffd there"
    assert "you: ok \\x1b[2J\\x1b]52;c;eA==\\x07" in lines
    assert "\x1b" not in result.stdout
