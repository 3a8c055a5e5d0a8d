"""intercept-loadtest's command line: arguments, the config it writes, the JSON and exit status."""

from __future__ import annotations

import json

import pytest

from intercept.config import load_config
from loadtest.cli import main, options_from, parser
from loadtest.report import REPORT_KEYS
from loadtest.target import SCENARIO_NAME


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return options_from(parser().parse_args(list(argv)))


def test_defaults_are_the_ci_run_with_every_behaviour():
    options = parse()
    assert (options.transport, options.buyers, options.duration) == ("smpp", 1000, 30.0)
    assert set(options.mix) == {"human", "fragment", "photo", "abandon", "stop", "rapid",
                                "two_numbers"}
    assert options.faults == {}


def test_mix_faults_and_think_are_parsed():
    options = parse("--mix", "human=5,stop=1", "--faults", "drop=0.01,throttle=0.05",
                    "--think", "2:8", "--transport", "provider")
    assert options.mix == {"human": 5.0, "stop": 1.0}
    assert options.faults == {"drop": 0.01, "throttle": 0.05}
    assert options.think == (2.0, 8.0)
    assert options.rate_cap is None
    assert parse("--rate-cap", "200").rate_cap == 200.0


async def test_a_rate_cap_throttles_the_simulated_smsc_above_it(autojump_clock):
    from loadtest.phones import SmppPhones

    phones = SmppPhones(lambda reply: None, rate_cap=50.0)
    assert phones.smsc.max_rate == 50.0
    assert phones.stats()["throttled"] == 0 and "accepted_per_s_median" in phones.stats()


@pytest.mark.parametrize(("argv", "message"), [
    (["--mix", "human=1,dancing=2"], "unknown name 'dancing'"),
    (["--mix", "human"], "should read NAME=NUMBER"),
    (["--mix", "human=0"], "no behaviour a weight above 0"),
    (["--faults", "drop=0.7,slow=0.5"], "add up to more than 1"),
    (["--think", "5:2"], "MIN <= MAX"),
    (["--buyers", "0"], "must be above 0"),
    (["--listen", "nowhere"], "should read HOST:PORT"),
])
def test_bad_arguments_are_refused_with_a_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_combinations_that_cannot_run_are_refused():
    with pytest.raises(ValueError, match="lost_resp is not offered for --transport provider"):
        parse("--transport", "provider", "--faults", "lost_resp=0.1")
    with pytest.raises(ValueError, match="--target needs --ours"):
        parse("--target", "http://127.0.0.1:8080")
    with pytest.raises(ValueError, match="at most 200,000"):
        parse("--buyers", "300000")


def test_write_config_gives_a_config_the_server_accepts(tmp_path, capsys):
    main(["--write-config", str(tmp_path), "--listen", "127.0.0.1:2775", "--numbers", "3"])
    config = load_config(tmp_path / "intercept.toml", environ={})
    assert [n.scenario for n in config.numbers] == [SCENARIO_NAME] * 3
    assert config.gateway.url == "smpp://intercept@127.0.0.1:2775"
    assert config.delays.enabled is False
    assert (tmp_path / "scenarios" / f"{SCENARIO_NAME}.yaml").exists()
    assert "intercept-loadtest --transport smpp --target" in capsys.readouterr().out


def test_write_config_needs_a_fixed_port(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--write-config", str(tmp_path)])
    assert exit_.value.code == 2
    assert "fixed port" in capsys.readouterr().err


def test_a_short_run_prints_json_and_exits_cleanly(capsys):
    main(["--in-process", "--buyers", "6", "--duration", "0.6", "--ramp-up", "0.1",
          "--think", "0.05:0.1", "--settle", "0.1", "--mix", "human=1,rapid=1", "--json",
          "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert set(REPORT_KEYS) <= set(report)
    assert report["ok"] is True
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert set(report["latency_ms_after_ramp_up"]) == {"p50", "p95", "p99", "max"}
    assert set(report["messages"]) >= {"in", "out", "in_per_s", "out_per_s"}


def test_the_pipeline_benchmark_runs_at_a_tiny_size(capsys):
    """`python -m loadtest.bench` is not run by CI at full size: this keeps it from rotting
    (it broke once when config durations became typed)."""
    from loadtest import bench

    bench.main(["--conversations", "20", "--turns", "1"])
    printed = capsys.readouterr()
    out = printed.out + printed.err
    assert "opened 20 conversations" in out and "total msg/s" in out


def test_the_gc_probe_runs_at_a_tiny_size(capsys):
    """`python -m loadtest.gcprobe` is not run by CI at full size: this keeps it from rotting."""
    from loadtest import gcprobe

    gcprobe.main(["--conversations", "30", "--turns", "1", "--freeze", "--no-trace", "--json"])
    found = json.loads(capsys.readouterr().out)
    assert found["live"] == 30 and found["messages"] == 30
    assert found["frozen_objects"] > 0 and found["frozen_live_objects"] > 0
    assert found["tracked_objects_per_conversation"] > 0
    assert set(found["collections"]) == {"gen0", "gen1", "gen2"}


def test_profile_server_profiles_only_a_server_the_load_tester_starts(tmp_path):
    assert parse("--profile-server", str(tmp_path / "s.prof")).profile_server == (
        tmp_path / "s.prof")
    assert parse().profile_server is None
    for argv in (["--in-process"], ["--target", "http://127.0.0.1:8080", "--ours", "+12065550100"]):
        with pytest.raises(ValueError, match="--profile-server profiles the server"):
            parse("--profile-server", str(tmp_path / "s.prof"), *argv)
    with pytest.raises(ValueError, match=r"no folder .*nowhere to write it in"):
        parse("--profile-server", str(tmp_path / "nowhere" / "s.prof"))
