"""Load runs of a real scenario (`intercept-loadtest --scenario`): the buyer corpus, the
scenario in compressed time, the accounting rules one by one (each can fail), and small runs
of the shipped scenario, clean and with a duplicate the accounting must catch."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest
import trio

from intercept.scenarios import ScenarioRegistry
from loadtest import scenario_run
from loadtest.cli import main
from loadtest.corpus import Corpus, Message, messages
from loadtest.ledger import Reply
from loadtest.phones import SmppPhones
from loadtest.scaled import resolve, scale_value, write_scaled
from loadtest.scenario_ledger import ScenarioLedger
from loadtest.scenario_report import SCENARIO_REPORT_KEYS
from loadtest.scenario_run import run_scenario
from loadtest.state import LoadRun, Options

LINK = "https://help.example/load"
THEIR, OUR = "+12125550001", "+12065550100"


def ledger(*, exact: bool = True, bound: float = 5.0) -> ScenarioLedger:
    return ScenarioLedger(bound=bound, marker=LINK, exact_keys=exact)


def reply(text: str, at: float, key: str | None = None, their: str = THEIR) -> Reply:
    return Reply(their=their, our=OUR, text=text, at=at, key=key or f"{OUR}>{their}:{text}")


# -- the corpus


def test_the_shipped_corpus_loads_and_every_path_draws_its_pools():
    corpus = Corpus.load()
    assert {p.ends for p in corpus.paths} == {"deterred", "opted_out", "open"}
    texts = {m.text for pool in corpus.pools.values() for alt in pool for m in messages(alt)}
    assert {"u avail tonite?", "150?", "are u a cop"} <= texts
    assert any(isinstance(alt, list) and len(alt) > 1 and "[photo]" not in alt
               for alt in corpus.pools["available"])  # fragments sent as several texts
    plans = [corpus.draw(random.Random(i)) for i in range(200)]
    assert {p.path for p in plans} == {p.name for p in corpus.paths}
    assert any(m.photo for p in plans for step in p.steps for m in step)
    assert [corpus.draw(random.Random(7)) for _ in range(2)] == [corpus.draw(random.Random(7))] * 2


def test_a_photo_marker_puts_a_picture_on_the_next_text():
    assert messages(["[photo]", "thats me"]) == (Message("thats me", True),)
    assert messages(["hey", "[photo]"]) == (Message("hey"), Message("", True))


@pytest.mark.parametrize(("change", "message"), [
    ("paths:\n  - {name: x, steps: [nope], ends: open}\n", "names pool 'nope'"),
    ("paths:\n  - {name: x, steps: [a], ends: open, colour: red}\n", "colour"),
    ("paths:\n  - {name: x, steps: [a], ends: married}\n", "ends"),
    ("paths:\n  - {name: x, steps: [a], ends: open, weight: 0}\n", "no path has a weight"),
])
def test_a_broken_corpus_is_refused_with_a_sentence(tmp_path: Path, change: str, message: str):
    path = tmp_path / "c.yaml"
    path.write_text("pools:\n  a: [hi]\n" + change)
    with pytest.raises(ValueError, match=message) as caught:
        Corpus.load(path)
    assert str(path) in str(caught.value)


# -- the scenario in compressed time


def test_durations_are_scaled_and_amounts_are_not():
    assert scale_value("40m", 0.01) == "24.000s"
    assert scale_value("15s", 0.01) == "0.150s"
    assert scale_value(149, 0.01) == 149  # a `number: {max: 149}` amount
    assert scale_value("1h30m", 0.5) == "2700.000s"


def test_the_shipped_scenario_scaled_still_compiles_with_its_includes(tmp_path: Path):
    scaled = write_scaled(resolve("shipped"), tmp_path, 0.01)
    assert scaled.name == "buyer-deterrence"
    assert scaled.merge == pytest.approx(0.15) and scaled.busy_max == pytest.approx(2.4)
    assert (tmp_path / "shared" / "compliance.yaml").exists()
    machine = ScenarioRegistry.from_dir(tmp_path).current("buyer-deterrence")
    assert machine is not None and machine.expire is not None
    assert machine.expire.after == pytest.approx(864.0)


def test_a_scale_of_zero_or_a_missing_file_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="above 0"):
        write_scaled(resolve("shipped"), tmp_path, 0)
    with pytest.raises(ValueError, match="no such file"):
        resolve(str(tmp_path / "missing.yaml"))


# -- the accounting rules


def test_fragments_share_the_first_reply_and_later_parts_answer_nothing():
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="open")
    book.expect(conv, "reply", 1.0)
    book.expect(conv, "reply", 1.2)
    book.received_reply(reply("hey who's this", 1.5))
    book.received_reply(reply("i'm jo", 1.6))
    assert (book.answered, book.outstanding, book.unsolicited) == (2, 0, 1)
    assert list(book.latencies) == [pytest.approx(0.3)]  # from the text that closed the burst
    assert not any(book.violations().values()) and book.duplicates == 0


def test_a_text_without_a_reply_is_unanswered_and_a_slow_one_late():
    book = ledger(bound=2.0)
    conv = book.open(1, THEIR, OUR, path="p", ends="open")
    book.expect(conv, "reply", 1.0)
    book.received_reply(reply("ok", 4.0))
    book.expect(conv, "reply", 5.0)
    assert book.violations()["late"] == 1
    assert book.violations()["unanswered"] == 1


def test_the_same_reply_twice_is_a_duplicate():
    book = ledger()
    book.open(1, THEIR, OUR, path="p", ends="open")
    book.received_reply(reply("hi", 1.0, key="outbox-1"))
    book.received_reply(reply("hi", 1.1, key="outbox-1"))
    assert book.duplicates == 1


def test_over_smpp_repeats_are_duplicates_only_beyond_the_store_rows():
    book = ledger(exact=False)
    book.open(1, THEIR, OUR, path="p", ends="open")
    for at in (1.0, 2.0, 3.0):
        book.received_reply(reply("ok", at))
    key = f"{OUR}>{THEIR}:ok"
    book.reconcile_repeats(Counter({key: 3}))
    assert book.duplicates == 0  # the persona said "ok" three times
    book.reconcile_repeats(Counter({key: 2}))
    assert book.duplicates == 1


def test_stop_gets_one_confirmation_then_silence():
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="opted_out")
    book.expect(conv, "stop", 1.0)
    book.received_reply(reply("You're unsubscribed. Reply START to undo.", 1.1, "c1"))
    assert conv.confirmed_at == 1.1
    book.expect(conv, "none", 2.0)
    book.received_reply(reply("hey u there?", 2.5, "n1"))
    book.received_reply(reply("You're unsubscribed. Reply START to undo.", 2.6, "c2"))
    assert book.violations()["after_optout"] == 1
    assert book.extra_confirmations == 1 and book.duplicates == 1
    book.finish()
    assert book.violations()["unconfirmed_stop"] == 0


def test_a_stop_never_confirmed_is_a_violation():
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="opted_out")
    book.expect(conv, "stop", 1.0)
    book.received_reply(reply("150 for the hour", 1.1))  # scheduled before the STOP
    book.finish()
    assert book.violations()["unconfirmed_stop"] == 1


def test_a_reply_after_the_deterrence_is_a_violation_and_a_missed_outcome_too():
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="deterred")
    book.expect(conv, "reply", 1.0)
    book.received_reply(reply(f"help is here: {LINK}", 1.2))
    assert conv.deterred_at == 1.2
    book.received_reply(reply("hey", 1.3))
    assert book.violations()["after_end"] == 1
    other = book.open(2, "+12125550002", OUR, path="q", ends="deterred")
    book.expect(other, "reply", 1.0)
    book.received_reply(reply("150/hr", 1.1, their="+12125550002"))
    other.finished = True
    book.finish()
    assert book.violations()["outcome_missed"] == 1
    assert book.outcomes()["q"]["open"] == 1 and book.outcomes()["p"]["deterred"] == 1


def test_a_text_that_crossed_the_deterrence_expects_nothing():
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="deterred")
    book.expect(conv, "reply", 1.0)
    book.expect(conv, "reply", 1.5)  # sent after the deterrence left the server...
    book.received_reply(reply(f"help is here: {LINK}", 1.4))  # ...which reaches him now
    assert (book.answered, book.crossed_end, book.outstanding) == (1, 1, 0)
    assert book.violations()["unanswered"] == 0


def test_a_reply_to_a_phone_that_never_texted_is_unexpected():
    book = ledger()
    book.received_reply(reply("hi", 1.0))
    assert book.violations()["unexpected"] == 1


def test_against_a_running_server_replies_to_an_earlier_runs_phones_are_left_out():
    from loadtest.behaviours import MAX_BUYERS, buyer_index, buyer_number

    assert [buyer_index(buyer_number(i)) for i in (0, 9_999, 10_000, MAX_BUYERS - 1)] == [
        0, 9_999, 10_000, MAX_BUYERS - 1]
    assert buyer_index("+14255550100") is None and buyer_index("+12125550") is None
    book = ledger()
    book.earlier_phones = 10  # conversations 0-9 were an earlier run's
    book.received_reply(reply("hello??", 1.0, their=buyer_number(9)))
    assert book.earlier_replies == 1 and book.violations()["unexpected"] == 0
    book.received_reply(reply("hello??", 1.0, their=buyer_number(10)))
    assert book.violations()["unexpected"] == 1


async def test_a_buyer_waits_for_a_reply_then_for_quiet(autojump_clock):
    book = ledger()
    conv = book.open(1, THEIR, OUR, path="p", ends="open")

    async def persona() -> None:
        for at in (1.0, 1.3, 1.5):
            await trio.sleep_until(at)
            book.received_reply(reply(f"part {at}", at))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(persona)
        book.expect(conv, "reply", 0.0)
        assert await book.wait_reply(conv, 0, 5.0)
        assert trio.current_time() == pytest.approx(1.0)
        await book.wait_quiet(conv, 0.4, 5.0)
        assert trio.current_time() == pytest.approx(1.9)
    assert not await book.wait_reply(conv, conv.replies, 0.5)


# -- runs


def quick(**changes: object) -> Options:
    options = Options(scenario="shipped", buyers=16, duration=3.0, ramp_up=0.5, drain=8.0,
                      settle=0.3, delay_scale=0.005, in_process=True, numbers=2,
                      reply_timeout=0.0)
    return dataclasses.replace(options, **changes)  # type: ignore[arg-type]


def test_a_short_scenario_run_prints_json_and_exits_cleanly(capsys):
    main(["--scenario", "shipped", "--in-process", "--buyers", "12", "--duration", "3",
          "--ramp-up", "0.3", "--settle", "0.2", "--delay-scale", "0.004", "--numbers", "2",
          "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert set(SCENARIO_REPORT_KEYS) <= set(report)
    assert report["ok"] is True, report
    assert report["scenario"] == "buyer-deterrence"
    assert report["messages"]["texts_in"] > 20
    assert report["latency_ms"]["first_reply"]["p50"] is not None
    assert report["outcomes"]["total"]["deterred"] >= 1


@pytest.mark.slow
async def test_a_clean_run_of_the_shipped_scenario_reaches_its_outcomes():
    report = await run_scenario(quick(buyers=30, duration=5.0), progress=None)
    assert report["ok"], report
    assert not any(report["violations"].values()) and report["duplicates"] == 0
    total = report["outcomes"]["total"]
    assert total["deterred"] >= 5 and total["opted_out"] >= 1
    # what the buyers saw agrees with what the store recorded
    stored = report["store_outcomes"].get("ended/deterred", 0)
    assert total["deterred"] <= stored <= total["deterred"] + total["open"] + total["cut_short"]
    assert report["latency_ms"]["beyond_schedule"]["p50"] is not None
    assert report["server"]["outbox"].get("refused", 0) == 0 or total["opted_out"]


@pytest.mark.slow
async def test_phones_that_texted_stop_are_left_out_when_the_phones_wrap(monkeypatch):
    # a soak runs through every simulated phone and starts again with the next of our numbers;
    # an opt-out holds for all of them, so a phone that texted STOP must not text again
    monkeypatch.setattr(scenario_run, "MAX_BUYERS", 8)
    report = await run_scenario(quick(buyers=4, duration=8.0), progress=None)
    assert report["conversations"] > 8  # the phones wrapped
    assert report["outcomes"]["total"]["opted_out"] >= 1
    assert report["ok"], report["violations"]


@pytest.mark.slow
async def test_a_provider_run_with_photos_passes():
    report = await run_scenario(quick(transport="provider"), progress=None)
    assert report["ok"], report
    messages = report["messages"]
    assert report["network"]["created"] == messages["replies_out"] + messages["warmup_replies"]
    assert messages["warmup_replies"] >= 2


@pytest.mark.slow
async def test_a_resent_reply_is_caught_as_a_duplicate():
    async def lose_one_response(run: LoadRun) -> None:
        await trio.sleep(1.0)
        assert isinstance(run.phones, SmppPhones)
        run.phones.smsc.drop_on_submit("before_resp", after=1)  # SMPP's at-least-once edge

    report = await run_scenario(quick(), progress=None, hook=lose_one_response)
    assert not report["ok"]
    assert report["duplicates"] >= 1
    assert report["detail"]["examples"]["duplicate"]


@pytest.mark.slow
async def test_a_running_server_loaded_with_the_scenario_its_config_was_written_for(
        tmp_path: Path, capsys):
    """--write-config --scenario gives a server the scaled scenario; --target --scenario then
    loads it, reads its store with --store, and a second run against the same store goes on
    at --first-conversation (the first run's conversations have ended: their phones would get
    no answer). Each run warms the server up on a pair new to it."""
    from intercept.config import load_config
    from intercept.server import Server
    from loadtest.target import free_port, secrets_env

    smsc, http = free_port(), free_port()
    main(["--write-config", str(tmp_path), "--listen", f"127.0.0.1:{smsc}", "--http-port",
          str(http), "--numbers", "2", "--scenario", "shipped", "--delay-scale", "0.005"])
    printed = capsys.readouterr().out
    assert "--scenario shipped --delay-scale 0.005 --store" in printed
    ours = printed.split("--ours ")[1].split()[0].split(",")
    config = load_config(tmp_path / "intercept.toml", environ=secrets_env("smpp"))
    assert {n.scenario for n in config.numbers} == {"buyer-deterrence"}
    server = Server(config)
    target = quick(in_process=False, target=f"http://127.0.0.1:{http}", ours=ours,
                   listen=("127.0.0.1", smsc), store=tmp_path / "intercept.db", buyers=12)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        first = await run_scenario(target, progress=None)
        second = await run_scenario(
            dataclasses.replace(target, first_conversation=first["next_conversation"]),
            progress=None)
        nursery.cancel_scope.cancel()
    for report in (first, second):
        assert report["ok"], (report["violations"], report["detail"])
        assert report["outcomes"]["total"]["deterred"] >= 1
        assert report["latency_ms"]["beyond_schedule"]["p50"] is not None
        assert report["duplicates_verified"]
        assert report["server"]["warmup_first_reply_s"] is not None
        # this run's conversations in the store (the warm-up's too), not the other run's
        assert sum(report["store_outcomes"].values()) == report["conversations"] + 1
    assert first["next_conversation"] == first["conversations"] + 1  # the warm-up took one
    assert second["next_conversation"] == (first["next_conversation"]
                                           + second["conversations"] + 1)


# -- the generator in separate processes


def test_a_buyer_process_gets_the_options_it_needs_as_json(tmp_path):
    from loadtest.shards import _plain

    options = Options(scenario="shipped", corpus=tmp_path / "buyers.yaml",
                      profile_server=tmp_path / "server.prof")
    data = json.loads(json.dumps(_plain(options)))  # the server's profile is not theirs
    assert "profile_server" not in data and data["corpus"] == str(tmp_path / "buyers.yaml")
    assert data["scenario"] == "shipped"


def test_ledgers_of_buyer_processes_merge_into_one_verdict():
    parts = []
    for shard, their in enumerate(("+12125550001", "+12125550002")):
        book = ledger(exact=False)
        conv = book.open(shard, their, OUR, path="p", ends="deterred")
        book.expect(conv, "reply", 1.0)
        book.received_reply(reply(f"bye {LINK}", 1.25, their=their))
        book.received_reply(reply(f"bye {LINK}", 1.3, their=their))  # after the end
        book.expect(conv, "reply", 2.0)  # never answered
        conv.finished = True
        book.finish()
        parts.append(book.summary(wall_offset=1000.0))
    merged = ledger(exact=False)
    merged.merge(json.loads(json.dumps(parts)))  # as the processes send them
    assert merged.sent == 4 and merged.received == 4
    assert merged.violations()["after_end"] == 2 and merged.violations()["unanswered"] == 2
    assert merged.outcomes() == {"p": {"buyers": 2, "deterred": 2, "opted_out": 0, "open": 0,
                                       "cut_short": 0}}
    assert sorted(merged.latencies) == [pytest.approx(0.25)] * 2
    key = f"{OUR}>+12125550001:bye {LINK}"
    assert merged.deliveries[key] == 2
    merged.reconcile_repeats(Counter({key: 1}))
    assert merged.duplicates == 1
    (row,) = [r for r in merged.first_reply_rows(0.0) if r[0] == key]
    assert row[2] == pytest.approx(1001.25)  # the wall-clock time, for the store's rows


def test_beyond_schedule_after_the_ramp_up_counts_the_texts_sent_after_it():
    from types import SimpleNamespace

    from loadtest.scenario_report import beyond_schedule, ramp_up_end

    parts = []
    for end, rows in ((1010.0, [("a", 0.5, 1005.0, False), ("b", 0.25, 1012.0, False)]),
                      (1011.0, [("c", 0.75, 1011.5, False), ("d", 0.1, 1020.0, True)])):
        parts.append({**ledger(exact=False).summary(0.0), "first": rows, "ramp_up_end": end})
    book = ledger(exact=False)
    book.merge(json.loads(json.dumps(parts)))
    run = SimpleNamespace(ledger=book, scaled=SimpleNamespace(merge=0.0), wall_offset=0.0,
                          start_at=0.0, options=SimpleNamespace(ramp_up=1.0))
    assert ramp_up_end(run) == 1011.0  # the last buyer process to have started them all
    stored = [(key, OUR, THEIR, "x", 1000.0, 1000.0) for key in "abcd"]  # nothing scheduled
    assert sorted(beyond_schedule(run, stored)) == [0.25, 0.5, 0.75]  # "d" is an opening
    # "a" was sent at 1004.5 and "c" at 1010.75, before the ramp-up ended; "b" at 1011.75
    assert beyond_schedule(run, stored, since=ramp_up_end(run)) == [0.25]


def test_the_process_near_a_whole_core_is_named_the_bound():
    from loadtest.state import process_figures

    pids = {"server": 1, "network (SMSC)": 2, "buyers 1": 3}
    start = {name: {"cpu_seconds": 0.0, "rss_mib": 10.0} for name in pids}
    end = {"server": {"cpu_seconds": 9.6, "rss_mib": 200.0},
           "network (SMSC)": {"cpu_seconds": 3.0, "rss_mib": 50.0},
           "buyers 1": {"cpu_seconds": 2.0, "rss_mib": 40.0}}
    figures = process_figures(pids, start, end, 10.0)
    assert figures["cpu_share_of_one_core"]["server"] == 0.96
    assert figures["bound"].startswith("server")
    end["server"]["cpu_seconds"] = 5.0
    assert process_figures(pids, start, end, 10.0)["bound"].startswith("none")


@pytest.mark.slow
def test_a_tiny_run_in_two_buyer_processes_gathers_their_figures(capsys):
    main(["--scenario", "shipped", "--processes", "2", "--buyers", "10", "--duration", "3",
          "--ramp-up", "0.3", "--settle", "0.2", "--delay-scale", "0.004", "--numbers", "2",
          "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True, report
    assert report["buyer_processes"] == 2
    shares = report["processes"]["cpu_share_of_one_core"]
    assert {"server", "network (SMSC)", "buyers 1", "buyers 2"} <= set(shares)
    assert report["processes"]["bound"]
    assert report["network"]["unrouted"] == 0
    assert report["network"]["hub_mo"] == report["messages"]["texts_in"] + 2  # + the warm-up
    assert report["outcomes"]["total"]["buyers"] == report["conversations"] > 10


# -- the soak


def test_drift_is_measured_after_the_warm_up_two_ways():
    from loadtest.soak import drift

    samples = [(0.0, 50.0), (1.0, 90.0)] + [(2.0 + i, 100.0 + (i % 2)) for i in range(20)]
    found = drift(samples, warmup=2.0)
    assert found["samples_after_warmup"] == 20
    assert found["max_min_over_mean_pct"] == pytest.approx(100 * 1 / 100.5, abs=0.01)
    assert found["first_vs_last_window_pct"] == 0.0
    growing = [(float(i), 100.0 + i) for i in range(20)]
    assert drift(growing, warmup=0.0)["first_vs_last_window_pct"] > 15
    assert drift(samples[:1], warmup=0.0)["max_min_over_mean_pct"] is None


def test_the_rss_curve_is_a_small_standalone_svg():
    from loadtest.soak import rss_svg

    out = rss_svg([(0.0, 200.0), (5.0, 210.0), (10.0, 205.0)], 1.0, "RSS <soak>")
    assert out.startswith("<svg") and out.endswith("</svg>")
    assert "<polyline" in out and "RSS &lt;soak&gt;" in out
    assert out.count(",") >= 3 and "10 s" in out


@pytest.mark.slow
def test_a_tiny_soak_reports_its_rss_curve_and_drift(capsys, tmp_path: Path):
    picture = tmp_path / "rss.svg"
    # a few seconds: the figures mean nothing, so only the report's shape is checked
    main(["--soak", "4s", "--buyers", "8", "--rss-every", "0.5", "--ramp-up", "0.3",
          "--settle", "0.2", "--delay-scale", "0.004", "--numbers", "2",
          "--rss-svg", str(picture), "--no-fail-on-loss", "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    soak = report["soak"]
    assert {"samples", "warmup_s", "max_min_over_mean_pct", "first_vs_last_window_pct",
            "flat", "curve", "svg"} <= set(soak)
    assert soak["samples"] >= 4 and soak["warmup_s"] == pytest.approx(0.4)
    assert soak["hibernate_after"] == "2s"
    assert soak["flat"] == (soak["max_min_over_mean_pct"] <= soak["max_drift_pct"] == 5.0)
    assert report["ok"] == (soak["flat"] and not any(report["violations"].values()))
    assert picture.read_text().startswith("<svg")
    assert not any(report["violations"].values()), report["detail"]


@pytest.mark.slow
def test_the_echo_runs_in_two_buyer_processes_with_its_exact_accounting(capsys):
    main(["--processes", "2", "--buyers", "12", "--duration", "2", "--ramp-up", "0.3",
          "--think", "0.05:0.2", "--settle", "0.2", "--numbers", "2", "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True, report
    assert (report["lost"], report["duplicates"], report["buyers"]) == (0, 0, 12)
    assert sum(row["buyers"] for row in report["behaviours"].values()) == 12
    assert report["messages"]["answered"] == sum(
        row["answered"] for row in report["behaviours"].values()) > 12
    assert report["network"]["hub_mo"] == report["messages"]["in"] + 2  # + the warm-up
    assert {"server", "buyers 1", "buyers 2"} <= set(report["processes"]["cpu_share_of_one_core"])
    steady = report["latency_ms_after_ramp_up"]  # pooled from both buyer processes
    assert steady["p50"] is not None and steady["max"] <= report["latency_ms"]["max"]


# -- the command line


def test_soak_and_scenario_options_are_parsed():
    from loadtest.cli import options_from, parser

    def parse(*argv: str) -> Options:
        return options_from(parser().parse_args(list(argv)))

    soak = parse("--soak")
    assert (soak.duration, soak.scenario, soak.hibernate_after) == (3600.0, "shipped", "2s")
    assert parse("--soak", "90s", "--hibernate-after", "5s").hibernate_after == "5s"
    plain = parse("--scenario", "x.yaml", "--processes", "3", "--smsc-window", "500")
    assert (plain.processes, plain.smsc_window, plain.reply_timeout) == (3, 500, 0.0)
    assert plain.hibernate_after == "2m"
    assert parse().reply_timeout == 10.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--soak", "--target", "http://127.0.0.1:1", "--ours", "+12065550100"],
     "cannot be combined with --target"),
    (["--scenario", "shipped", "--store", "x.db"], "use it with --target and --scenario"),
    (["--scenario", "shipped", "--first-conversation", "5"], "against a running server"),
    (["--scenario", "shipped", "--target", "http://127.0.0.1:1", "--ours", "+12065550100",
      "--first-conversation", "200000"], "outside 0 to 199,999"),
    (["--scenario", "shipped", "--experiment"], "cannot be combined"),
    (["--processes", "2", "--transport", "provider"], "over SMPP"),
    (["--processes", "2", "--in-process"], "drop --in-process"),
    (["--processes", "8", "--buyers", "4"], "each buyer process needs at least one buyer"),
])
def test_combinations_that_cannot_run_are_refused(argv: list[str], message: str):
    from loadtest.cli import options_from, parser

    with pytest.raises(ValueError, match=message):
        options_from(parser().parse_args(argv))


def test_a_store_the_load_tester_cannot_read_is_refused_before_the_run(tmp_path: Path):
    from loadtest.cli import options_from, parser

    junk = tmp_path / "intercept.db"
    junk.write_bytes(b"not a database, or an encrypted one" * 200)
    argv = ["--scenario", "shipped", "--target", "http://127.0.0.1:1", "--ours", OUR]
    with pytest.raises(ValueError, match=r"cannot read the server's store .* leave --store out"):
        options_from(parser().parse_args([*argv, "--store", str(junk)]))
    with pytest.raises(ValueError, match="--deterrence-link is empty"):
        options_from(parser().parse_args([*argv, "--deterrence-link", " "]))


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_a_buyer_process_keeps_its_phones_when_they_wrap_around(shards):
    """The process that saw a phone text STOP is the one that would text from it again: a
    phone belongs to one process on every wrap, and every (phone, our number) pair is used."""
    from loadtest.behaviours import MAX_BUYERS

    ours = ["+12065550100", "+12065550101"]
    seen: Counter[int] = Counter()
    owner: dict[int, int] = {}
    for shard in range(shards):
        run = LoadRun(Options(scenario="shipped"), None, ledger())  # type: ignore[arg-type]
        buyers = scenario_run.ScenarioBuyers(run, Corpus.load(None), ours, shard=shard,
                                             shards=shards)
        while (number := buyers.take_number()) is not None:
            seen[number] += 1
            assert owner.setdefault(number % MAX_BUYERS, shard) == shard
    assert len(seen) == MAX_BUYERS * len(ours) and set(seen.values()) == {1}


def test_a_scenario_run_drains_at_least_its_reply_bound():
    """At --delay-scale 1 the bound is minutes: a drain shorter than it would count the last
    texts' replies, still scheduled, as unanswered."""
    from loadtest.scaled import ScaledScenario

    scaled = ScaledScenario(name="s", merge=15.0, busy_max=60.0, files=())
    options = Options(scenario="shipped", delay_scale=1.0, drain=20.0, reply_timeout=0.0)
    scenario_run.fit_bound(options, scaled)
    assert options.reply_timeout == scenario_run.default_bound(scaled, 1.0) > 60
    assert options.drain == options.reply_timeout
    quick = Options(scenario="shipped", delay_scale=0.01, drain=20.0, reply_timeout=0.0)
    scenario_run.fit_bound(quick, ScaledScenario(name="s", merge=0.15, busy_max=0.6, files=()))
    assert quick.reply_timeout < 20
    assert quick.drain == 20.0  # a longer drain than the bound is kept
