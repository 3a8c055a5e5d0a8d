"""Short load runs against an in-process server: clean runs pass, and a duplicate or a stopped
server is reported (the accounting can fail)."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from intercept.runtime.lookups import number_metadata
from loadtest.phones import ProviderPhones, SmppPhones
from loadtest.report import REPORT_KEYS
from loadtest.run import WARMUP_PHONE, LoadRun, Options, run_load

pytestmark = pytest.mark.slow  # real processes / real seconds: see README, Development

ALL = {"human": 3, "fragment": 1, "photo": 1, "abandon": 1, "stop": 1, "rapid": 1,
       "two_numbers": 1}


def quick(**changes: object) -> Options:
    options = Options(buyers=18, duration=1.0, ramp_up=0.2, drain=4.0, settle=0.2, mix=ALL,
                      think=(0.05, 0.2), reply_timeout=2.0, in_process=True, numbers=2)
    return dataclasses.replace(options, **changes)  # type: ignore[arg-type]


async def test_a_clean_smpp_run_answers_every_message_once():
    # A server that has loaded phonenumbers' metadata (the buyer-number enricher's first call
    # stalls an in-process run for ~2 s on a busy machine, and STOP buyers then never get to
    # text after their STOP within the second this run lasts)
    number_metadata("+12065550100")
    report = await run_load(quick(), progress=None)
    assert set(REPORT_KEYS) <= set(report)
    assert report["ok"], report
    assert (report["lost"], report["duplicates"]) == (0, 0)
    assert report["messages"]["in"] > 50
    assert report["messages"]["answered"] == sum(
        row["answered"] for row in report["behaviours"].values())
    assert report["latency_ms"]["p99"] is not None
    assert set(report["behaviours"]) == set(ALL)
    assert report["server"]["outbox"].get("refused", 0) >= 1  # STOP's echo is refused


async def test_a_clean_provider_run_with_photos_and_faults_passes():
    report = await run_load(quick(transport="provider", faults={"error": 0.05, "drop": 0.05},
                                  mix={"human": 1, "photo": 2, "stop": 1}), progress=None)
    assert report["ok"], report
    messages = report["messages"]
    assert report["network"]["created"] == messages["out"] + messages["warmup_replies"]
    assert sum(report["faults"].values()) > 0


async def test_an_smpp_response_lost_after_acceptance_shows_as_a_duplicate():
    async def lose_one_response(run: LoadRun) -> None:
        await trio.sleep(0.5)
        assert isinstance(run.phones, SmppPhones)
        run.phones.smsc.drop_on_submit("before_resp", after=1)  # the documented edge

    report = await run_load(quick(mix={"human": 1}), progress=None, hook=lose_one_response)
    assert not report["ok"]
    assert report["duplicates"] >= 1
    assert report["detail"]["duplicate_deliveries"] >= 1
    assert report["network"]["submits_accepted_unanswered"] >= 1
    assert report["lost"] == 0


async def test_a_duplicate_creation_at_the_provider_is_reported():
    async def duplicate_one(run: LoadRun) -> None:
        assert isinstance(run.phones, ProviderPhones)
        fake = run.phones.fake
        while not (buyers := [r for r in fake.sent if r.to != WARMUP_PHONE]):
            await trio.sleep(0.01)
        fake.sent.append(buyers[0])  # the phone gets the same message (outbox id) again

    report = await run_load(quick(transport="provider", mix={"human": 1}), progress=None,
                            hook=duplicate_one)
    assert not report["ok"]
    assert report["duplicates"] == 1


async def test_a_server_stopped_mid_run_shows_lost_messages():
    async def stop_server(run: LoadRun) -> None:
        await trio.sleep(0.4)
        run.in_process.stop()

    report = await run_load(quick(mix={"human": 1}, drain=1.0), progress=None, hook=stop_server)
    assert not report["ok"]
    assert report["lost"] > 0
    assert report["detail"]["lost_examples"]



async def test_an_experiment_run_reports_its_branches_as_a_hand_count_does():
    """`--experiment`: the echo behind a split declared experiment; the branch figures of
    `intercept report --experiment` agree with counting the store's rows by hand, Wilson
    intervals included."""
    import math
    import shutil
    import sqlite3
    import time
    from pathlib import Path

    from intercept.store.experiments import SplitRef, compare_experiment
    from intercept.store.returns import city_lookup

    report = await run_load(quick(experiment=True, keep=True), progress=None)
    folder = Path(report["server"]["folder"])
    try:
        assert report["ok"], report
        with sqlite3.connect(folder / "intercept.db") as conn:
            by_hand = dict(conn.execute(
                "SELECT name, count(*) FROM tags WHERE name LIKE 'loadtest_branch:%' "
                "GROUP BY name"))
            ended = dict(conn.execute(
                "SELECT t.name, count(*) FROM tags t JOIN conversations c "
                "ON c.id = t.conversation_id WHERE t.name LIKE 'loadtest_branch:%' "
                "AND c.status != 'ended' GROUP BY t.name"))
            found = compare_experiment(
                conn, "loadtest-ab", [SplitRef("loadtest-echo", "loadtest_branch", ("a", "b"))],
                as_of=time.time(), city_of_number=city_lookup(conn))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert {k: v["conversations"] for k, v in report["experiment"]["branches"].items()} == {
        "a": by_hand.get("loadtest_branch:a", 0), "b": by_hand.get("loadtest_branch:b", 0)}
    assert sum(by_hand.values()) >= 18 and len(by_hand) == 2  # both branches drawn
    z = 1.959963984540054
    for arm in found.arms:
        n, k = by_hand[f"loadtest_branch:{arm.name}"], ended.get(f"loadtest_branch:{arm.name}", 0)
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        open_ = arm.rates["outcome open"]
        assert (open_.successes, open_.trials) == (k, n)
        assert open_.low == pytest.approx(max(0.0, centre - half), abs=1e-9)
        assert open_.high == pytest.approx(min(1.0, centre + half), abs=1e-9)


async def test_a_profiled_server_writes_its_profile_when_it_stops(tmp_path):
    import pstats

    path = tmp_path / "server.prof"
    report = await run_load(quick(in_process=False, profile_server=path, mix={"human": 1},
                                  buyers=6), progress=None)
    assert report["ok"], report
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    functions = {(file.rsplit("/", 1)[-1], name) for file, _line, name in stats}
    # the trio thread's work is in it: the SMPP gateway read the texts, the actors answered
    assert ("client.py", "_reader") in functions
    assert ("actor.py", "_work") in functions
