"""intercept-loadtest: simulated buyers texting our numbers, with exact loss and duplicate counts.

Starts `intercept serve` itself (a generated config: the echo scenario, delays off, a fresh
SQLite file in a temporary folder) behind the SMSC simulator (SMPP) or the fake Twilio provider
(signed webhooks in, REST out), or loads a running server (--target). Exit status: 0 when
nothing was lost, nothing arrived twice and no rule was broken; 1 otherwise (unless
--no-fail-on-loss); 2 when the run could not be made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from intercept.foundation import collector
from loadtest.behaviours import BEHAVIOURS, MAX_BUYERS
from loadtest.phones import PROVIDER_FAULTS, SMPP_FAULTS
from loadtest.run import Options, run_load
from loadtest.scaled import resolve, write_scaled
from loadtest.target import (
    CITY_LINK,
    CONFIRMATION,
    ServerSettings,
    config_dict,
    keep_off_cpu,
    our_numbers,
    read_store,
    secrets_env,
    write_config,
)

DEFAULT_MIX = "human=5,fragment=1,photo=1,abandon=1,stop=1,rapid=1,two_numbers=1"

EXAMPLES = """examples:
  intercept-loadtest                                    # 1,000 buyers, 30 s, SMPP, every behaviour
  intercept-loadtest --transport provider --buyers 500 --duration 60
  intercept-loadtest --buyers 5000 --think 0:0 --mix human=1 --json    # as fast as it goes
  intercept-loadtest --faults drop=0.002,throttle=0.05,slow=0.01
  intercept-loadtest --rate-cap 200 --buyers 2000 --think 0.5:1    # a contracted 200 submits/s
  intercept-loadtest --buyers 100000 --ramp-up 60 --duration 120 --think 30:70 --mix human=1
  intercept-loadtest --scenario shipped --buyers 200 --duration 60 --delay-scale 0.01
  intercept-loadtest --scenario shipped --processes 2 --buyers 2000 --duration 60
  intercept-loadtest --soak 1h --buyers 500 --rss-svg rss.svg    # is memory flat?
  python -m loadtest --write-config /tmp/lt --listen 127.0.0.1:2775   # config for --target
  intercept-loadtest --target http://127.0.0.1:8080 --listen 127.0.0.1:2775 \\
      --ours +12065550100,+12065550101
  python -m loadtest --write-config /tmp/lt --listen 127.0.0.1:2775 --scenario shipped \\
      --delay-scale 0.05              # a running server with the scenario scaled; it prints
                                      # the --target command for it

faults (probability per outbound submit): throttle, error, slow, drop; SMPP also lost_resp
(accepted, answer lost: resent by design, so it shows as duplicates). See loadtest/phones.py."""


def _pairs(text: str, allowed: tuple[str, ...], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{what}: {item!r} should read NAME=NUMBER")
        if name not in allowed:
            raise argparse.ArgumentTypeError(f"{what}: unknown name {name!r}; expected some of "
                                             f"{', '.join(allowed)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: {value!r} for {name} is not a number"
                                             ) from None
        if out[name] < 0:
            raise argparse.ArgumentTypeError(f"{what}: {name} is negative")
    return out


def mix(text: str) -> dict[str, float]:
    """--mix human=5,stop=1: weights of the behaviours."""
    weights = _pairs(text, tuple(BEHAVIOURS), "--mix")
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("--mix gives no behaviour a weight above 0")
    return weights


def faults(text: str) -> dict[str, float]:
    """--faults drop=0.01,throttle=0.05: probabilities per outbound submit."""
    rates = _pairs(text, tuple(dict.fromkeys(SMPP_FAULTS + PROVIDER_FAULTS)), "--faults")
    if sum(rates.values()) > 1:
        raise argparse.ArgumentTypeError("--faults: the probabilities add up to more than 1")
    return rates


def span(text: str) -> tuple[float, float]:
    """--think 2:8 (seconds, uniform) or a single number."""
    low, _, high = text.partition(":")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--think: {text!r} should read MIN:MAX seconds"
                                         ) from None
    if pair[0] < 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"--think: {text!r}: need 0 <= MIN <= MAX")
    return pair


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} should read HOST:PORT")
    return host.strip("[]"), int(port)


def positive(kind: type[int] | type[float]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intercept-loadtest", description=__doc__.split("\n\n")[0],
                                epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=["smpp", "provider"], default="smpp",
                   help="SMPP through the SMSC simulator, or the fake Twilio provider")
    p.add_argument("--buyers", type=positive(int), default=1000,
                   help=f"simulated buyers (default 1000, at most {MAX_BUYERS:,})")
    p.add_argument("--duration", type=positive(float), default=30.0,
                   help="seconds during which buyers text (default 30)")
    p.add_argument("--ramp-up", type=float, default=5.0,
                   help="seconds over which the buyers start (default 5)")
    p.add_argument("--drain", type=float, default=20.0,
                   help="seconds after the end to wait for the last answers (default 20; "
                        "with --scenario at least the reply bound)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to wait after the last answer for late copies (default 1)")
    p.add_argument("--mix", type=mix, default=mix(DEFAULT_MIX),
                   help=f"behaviour weights (default {DEFAULT_MIX})")
    p.add_argument("--think", type=span, default=(1.0, 5.0),
                   help="a human's pause between answer and next text, MIN:MAX s (default 1:5)")
    p.add_argument("--reply-timeout", type=positive(float), default=None,
                   help="a buyer waits this long for an answer before going on; later answers "
                        "count as late, not lost (default 10). With --scenario: the bound "
                        "within which every text must have a reply (default 5 s + the scaled "
                        "merge window, busy pause and longest reply delay)")
    p.add_argument("--faults", type=faults, default={},
                   help="gateway faults, probability per outbound submit: "
                        "throttle=,error=,slow=,drop=[,lost_resp=]")
    p.add_argument("--rate-cap", type=positive(float), default=None, metavar="N",
                   help="a contracted rate: the SMSC throttles our bind above N submits/s; the "
                        "fake provider answers 429 to a number sending above N/s")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--no-fail-on-loss", dest="fail_on_loss", action="store_false",
                   help="exit 0 even when messages were lost or duplicated")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    real = p.add_argument_group("a real scenario (instead of the echo)")
    real.add_argument("--scenario", metavar="FILE|shipped", default=None,
                      help="drive this scenario (shipped: scenarios/buyer-deterrence.yaml) "
                           "with buyers drawn from the corpus; accounting per conversation "
                           "(docs/performance.md)")
    real.add_argument("--delay-scale", type=positive(float), default=0.01,
                      help="with --scenario: factor on every delay and timer of the scenario "
                           "and the server, and on the buyers' pauses (default 0.01)")
    real.add_argument("--processes", type=positive(int), default=None, metavar="N",
                      help="the buyers in N processes and the SMSC simulator in one more "
                           "(SMPP; the echo or --scenario); the report says which process "
                           "was the bound (default: everything in this process)")
    real.add_argument("--corpus", type=Path, default=None,
                      help="with --scenario: the buyer corpus (default "
                           "loadtest/corpus/buyers.yaml)")
    real.add_argument("--first-conversation", type=int, default=0, metavar="N",
                      help="with --scenario --target: start at conversation N (its phone and "
                           "our number), after those an earlier run against the same store "
                           "used; that run's report says where to go on (default 0)")
    soak = p.add_argument_group("the soak: is memory flat? (a scenario run; default shipped)")
    soak.add_argument("--soak", nargs="?", const="1h", default=None, metavar="DURATION",
                      help="run for DURATION (default 1h) with conversations starting, "
                           "hibernating, waking and ending; sample the server's RSS; fail "
                           "when it drifts (replaces --duration)")
    soak.add_argument("--rss-every", type=positive(float), default=10.0, metavar="SECONDS",
                      help="with --soak: seconds between RSS samples (default 10)")
    soak.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                      help="with --soak: samples before this are left out of the drift "
                           "(default the first 10%%)")
    soak.add_argument("--max-drift", type=positive(float), default=5.0, metavar="PERCENT",
                      help="with --soak: fail when (max - min) / mean of the RSS after the "
                           "warm-up is above this (default 5)")
    soak.add_argument("--rss-svg", type=Path, default=None, metavar="FILE",
                      help="with --soak: write the RSS curve as an SVG")
    server = p.add_argument_group("the server it starts")
    server.add_argument("--numbers", type=positive(int), default=4,
                        help="how many of our numbers the generated config has (default 4)")
    server.add_argument("--window", type=positive(int), default=100, help="SMPP window")
    server.add_argument("--smsc-window", type=positive(int), default=100,
                        help="the SMSC simulator's window: texts in and delivery receipts it "
                             "sends before the server has answered them (default 100)")
    server.add_argument("--hibernate-after", default=None,
                        help="runtime.hibernate_after (default 2m; 2s with --soak)")
    server.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    server.add_argument("--checkpoints", choices=["writer", "beside"], default="writer",
                        help="store.checkpoints: the write-ahead log copied in the writer's "
                             "commits (default) or beside it")
    server.add_argument("--in-process", action="store_true",
                        help="run the server in this process (profiling, tests)")
    server.add_argument("--pin", action="store_true",
                        help="pin the server to CPU 0, and the load tester with its SMSC and "
                             "buyer processes to the other CPUs")
    server.add_argument("--experiment", action="store_true",
                        help="answer behind a split declared experiment loadtest-ab (two "
                             "branches alike); the report compares the branches as "
                             "'intercept report --experiment loadtest-ab' does")
    server.add_argument("--profile-server", type=Path, default=None, metavar="FILE",
                        help="run the server under cProfile (its trio thread: every call, "
                             "counted) and write the profile to FILE when it stops (read it "
                             "with python -m pstats); the server runs about half as fast")
    server.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (config, store, server log)")
    server.add_argument("--write-config", type=Path, metavar="DIR",
                        help="write the config and scenario for a server to load with "
                             "--target, then exit (needs --listen with a fixed port)")
    server.add_argument("--http-port", type=int, default=8080,
                        help="with --write-config: the server's HTTP port (default 8080)")
    target = p.add_argument_group("a running server")
    target.add_argument("--target", metavar="URL",
                        help="the running server's HTTP base URL (webhooks, /healthz)")
    target.add_argument("--listen", type=address, default=("127.0.0.1", 0),
                        metavar="HOST:PORT",
                        help="where the SMSC simulator / fake provider listens (default: any "
                             "free port on 127.0.0.1)")
    target.add_argument("--ours", default="",
                        help="the running server's numbers, comma-separated (they must run the "
                             "loadtest-echo scenario, or with --scenario that scenario scaled "
                             "by --delay-scale: see --write-config)")
    target.add_argument("--store", type=Path, default=None, metavar="FILE",
                        help="with --scenario: the running server's store file, when on this "
                             "machine; read after the run for the latency beyond the schedule, "
                             "duplicates over SMPP and outcomes")
    target.add_argument("--deterrence-link", default=CITY_LINK, metavar="TEXT",
                        help="with --scenario: a reply containing this is the deterrence "
                             "(default the link of --write-config's city)")
    target.add_argument("--confirmation", default=CONFIRMATION,
                        help="the server's optout.confirmation text")
    target.add_argument("--system-id", default="intercept")
    target.add_argument("--password", default=None, help="SMPP password the server binds with")
    target.add_argument("--account-sid", default=None)
    target.add_argument("--auth-token", default=None)
    target.add_argument("--no-callbacks", dest="callbacks", action="store_false",
                        help="the fake provider posts no status callbacks")
    return p


def options_from(args: argparse.Namespace) -> Options:
    """The run's Options from parsed arguments; ValueError names a bad combination."""
    allowed = SMPP_FAULTS if args.transport == "smpp" else PROVIDER_FAULTS
    wrong = [name for name in args.faults if name not in allowed]
    if wrong:
        raise ValueError(f"--faults {', '.join(wrong)} is not offered for --transport "
                         f"{args.transport} (it has {', '.join(allowed)})")
    if args.buyers > MAX_BUYERS:
        raise ValueError(f"--buyers is {args.buyers:,}; at most {MAX_BUYERS:,} are supported")
    ours = [n.strip() for n in args.ours.split(",") if n.strip()]
    if args.target and not ours:
        raise ValueError("--target needs --ours: the running server's numbers")
    if args.target and args.soak is not None:
        raise ValueError("--soak samples the memory of the server it starts; it cannot be "
                         "combined with --target")
    if args.store is not None and not (args.target and args.scenario):
        raise ValueError("--store reads a running server's store after a --scenario run: "
                         "use it with --target and --scenario (a server the load tester "
                         "starts keeps its store in its own folder)")
    if args.store is not None:
        if not args.store.is_file():
            raise ValueError(f"--store {args.store}: no such file")
        read_store(args.store, "SELECT 1 FROM outbox LIMIT 1")  # fail now, not after the run
    if args.scenario and not args.deterrence_link.strip():
        raise ValueError("--deterrence-link is empty: the buyers know a deterrence by it")
    if args.first_conversation and not (args.target and args.scenario):
        raise ValueError("--first-conversation is for a --scenario run against a running "
                         "server (--target) that kept an earlier run's store")
    if not 0 <= args.first_conversation < MAX_BUYERS * max(1, len(ours)):
        raise ValueError(f"--first-conversation {args.first_conversation:,} is outside 0 to "
                         f"{MAX_BUYERS * max(1, len(ours)) - 1:,} (phones times our numbers)")
    if args.processes and (args.target or args.experiment):
        raise ValueError("--processes starts its own server and runs the plain echo or a "
                         "--scenario: drop --target and --experiment")
    if args.processes and args.processes > args.buyers:
        raise ValueError(f"--processes {args.processes} is more than --buyers {args.buyers}: "
                         "each buyer process needs at least one buyer")
    if args.processes and (args.in_process or args.transport != "smpp"):
        raise ValueError("--processes runs the server and the SMSC simulator in processes of "
                         "their own, over SMPP: drop --in-process and --transport provider")
    if args.profile_server is not None and (args.target or args.in_process):
        raise ValueError("--profile-server profiles the server the load tester starts in a "
                         "process of its own: drop --target and --in-process")
    if args.profile_server is not None and not args.profile_server.parent.is_dir():
        raise ValueError(f"--profile-server {args.profile_server}: no folder "
                         f"{args.profile_server.parent} to write it in (the profile is written "
                         "at the end of the run)")
    if args.scenario and args.experiment:
        raise ValueError("--experiment runs the echo scenario; it cannot be combined with "
                         "--scenario")
    duration = args.duration
    if args.soak is not None:
        from loadtest.soak import duration as soak_duration

        duration = soak_duration(args.soak)
        args.scenario = args.scenario or "shipped"
    hibernate_after = args.hibernate_after or ("2s" if args.soak is not None else "2m")
    options = Options(
        transport=args.transport, buyers=args.buyers, duration=duration,
        ramp_up=min(args.ramp_up, duration), drain=args.drain, settle=args.settle,
        mix=args.mix, think=args.think, faults=args.faults,
        reply_timeout=args.reply_timeout or (0.0 if args.scenario else 10.0),
        scenario=args.scenario, delay_scale=args.delay_scale, corpus=args.corpus,
        processes=args.processes or 0,
        rate_cap=args.rate_cap,
        seed=args.seed, numbers=args.numbers, window=args.window,
        smsc_window=args.smsc_window,
        hibernate_after=hibernate_after, synchronous=args.synchronous,
        checkpoints=args.checkpoints,
        in_process=args.in_process, pin=args.pin, keep=args.keep, target=args.target,
        profile_server=args.profile_server,
        first_conversation=args.first_conversation, store=args.store,
        marker=args.deterrence_link,
        listen=args.listen, ours=ours, confirmation=args.confirmation,
        system_id=args.system_id, callbacks=args.callbacks, experiment=args.experiment)
    for name in ("password", "account_sid", "auth_token"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    return options


def _write_config(args: argparse.Namespace) -> None:
    host, port = args.listen
    if not port:
        raise ValueError("--write-config needs --listen HOST:PORT with a fixed port: the "
                         "server's gateway must know where the simulator will listen")
    folder = args.write_config.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    numbers = our_numbers(args.numbers)
    settings = ServerSettings(numbers=numbers, folder=folder, http_port=args.http_port,
                              window=args.window, hibernate_after=args.hibernate_after or "2m",
                              synchronous=args.synchronous, checkpoints=args.checkpoints)
    scenario = ""
    if args.scenario:
        scaled = write_scaled(resolve(args.scenario), folder / "scenarios", args.delay_scale)
        settings.scenario = scaled.name
        settings.extra = {"delays": {"enabled": True, "scale": args.delay_scale}}
        scenario = (f" --scenario {args.scenario} --delay-scale {args.delay_scale:g} "
                    f"--store {folder / 'intercept.db'}")
    config = config_dict(settings, transport=args.transport, network_port=port)
    path = write_config(config, folder, experiment=args.experiment)
    env = " ".join(f"{k}={v}" for k, v in secrets_env(args.transport).items())
    print(f"wrote {path} and {folder / 'scenarios'}\nrun the server:  {env} intercept serve "
          f"--config {path}\nthen:  intercept-loadtest --transport {args.transport} --target "
          f"http://127.0.0.1:{args.http_port} --listen {host}:{port} --ours {','.join(numbers)}"
          + scenario)


def _only_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: list[str] | None = None) -> None:
    """Parse, run, print the report; exit 0 (clean), 1 (lost/duplicates/violations), 2."""
    from loadtest.report import to_json, to_text

    args = parser().parse_args(argv)
    # Like the server: tens of thousands of buyer tasks are millions of long-lived objects,
    # and full collections over them would stall the simulated network for seconds.
    collector.tune()
    try:
        if args.write_config:
            _write_config(args)
            return
        options = options_from(args)
        if options.pin:
            keep_off_cpu(0)  # the server gets CPU 0 to itself; this process and its children
        progress = None if args.quiet else sys.stderr
        if options.scenario:
            from loadtest.scenario_report import scenario_text
            from loadtest.scenario_run import run_scenario
            from loadtest.shards import run_sharded

            runner = run_sharded if options.processes else run_scenario
            if args.soak is not None:
                from loadtest.soak import run_soak, soak_text

                report = trio.run(lambda: run_soak(
                    options, warmup=args.warmup, every=args.rss_every,
                    max_drift=args.max_drift, svg_path=args.rss_svg, progress=progress))
                text = soak_text
            else:
                report = trio.run(lambda: runner(options, progress=progress))
                text = scenario_text
        elif options.processes:
            from loadtest.shards import run_sharded

            report = trio.run(lambda: run_sharded(options, progress=progress))
            text = to_text
        else:
            report = trio.run(lambda: run_load(options, progress=progress))
            text = to_text
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"intercept-loadtest: {exc}", file=sys.stderr)
        sys.exit(2)
    except BaseExceptionGroup as group:
        leaf = _only_leaf(group)
        if not isinstance(leaf, ValueError | RuntimeError | OSError | KeyboardInterrupt):
            raise
        print(f"intercept-loadtest: {leaf or 'interrupted'}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("intercept-loadtest: interrupted", file=sys.stderr)
        sys.exit(2)
    print(to_json(report) if args.json else text(report), flush=True)
    if options.profile_server is not None and not args.quiet:
        print(f"intercept-loadtest: the server's profile is in {options.profile_server} "
              f"(python -m pstats {options.profile_server})", file=sys.stderr)
    if args.fail_on_loss and not report["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
