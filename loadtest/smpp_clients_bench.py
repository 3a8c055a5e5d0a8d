"""submit_sm per second over one bind: our SMPP client beside other Python SMPP clients.

    python -m loadtest.smpp_clients_bench [--seconds 5] [--window 100] [--runs 3]

All clients submit the same 60-character text, without delivery receipts, to one simulated SMSC
(`python -m loadtest.smsc --no-receipts`, its own process) in the same run:

- **intercept**: `SmppGateway.submit()` from enough tasks to keep `--window` requests in flight
  (the same measurement as `python -m loadtest.smpp_bench --only submit`);
- **smpplib** (synchronous): `send_message()` while fewer than `--window` are unanswered, else
  `read_once()`; its sent handler counts the answers;
- **aiosmpplib** (asyncio), if installed: a producer keeps its broker queue full; a hook counts
  the submit_sm_resp PDUs it reads (by command id). It has no window: it writes as fast as its
  queue gives.

The rate is answers counted over `--seconds` after a warm-up; the median of `--runs` is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import trio

from loadtest.smpp_bench import SAMPLE_TEXT, peer, submit_rate


def smpplib_rate(port: int, window: int, seconds: float) -> float:
    import smpplib.client
    import smpplib.consts

    client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
    answered = 0

    def sent(pdu: object) -> None:
        nonlocal answered
        answered += 1

    client.set_message_sent_handler(sent)
    client.connect()
    client.bind_transceiver(system_id="intercept", password="secret")
    text = SAMPLE_TEXT.encode()
    submitted = 0
    try:
        def pump(until: float) -> None:
            nonlocal submitted
            while time.perf_counter() < until:
                if submitted - answered < window:
                    client.send_message(
                        source_addr_ton=smpplib.consts.SMPP_TON_INTL, source_addr="12065550100",
                        dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                        destination_addr="12065550199", short_message=text)
                    submitted += 1
                else:
                    client.read_once()

        pump(time.perf_counter() + 0.3)
        start, before = time.perf_counter(), answered
        pump(start + seconds)
        rate = (answered - before) / (time.perf_counter() - start)
        while submitted > answered:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return rate


def aiosmpplib_rate(port: int, seconds: float) -> float | None:
    try:
        import aiosmpplib
    except ImportError:
        return None
    from aiosmpplib.hook import AbstractHook

    class Counter(AbstractHook):
        def __init__(self) -> None:
            self.answered = 0

        async def sending(self, smpp_message, pdu, client_id):  # type: ignore[no-untyped-def]
            return None

        async def received(self, smpp_message, pdu, client_id):  # type: ignore[no-untyped-def]
            if pdu[4:8] == b"\x80\x00\x00\x04":  # submit_sm_resp, correlated or not
                self.answered += 1

        async def send_error(self, smpp_message, error, client_id):  # type: ignore[no-untyped-def]
            return None

    async def main() -> float:
        hook = Counter()
        esme = aiosmpplib.ESME(smsc_host="127.0.0.1", smsc_port=port, system_id="intercept",
                               password="secret", hook=hook, log_level="WARNING")
        runner = asyncio.create_task(esme.start())
        stop = False

        async def produce() -> None:
            i = 0
            while not stop:
                i += 1
                await esme.broker.enqueue(aiosmpplib.SubmitSm(
                    short_message=SAMPLE_TEXT, log_id=str(i),
                    source=aiosmpplib.PhoneNumber("12065550100", aiosmpplib.TON.INTERNATIONAL),
                    destination=aiosmpplib.PhoneNumber("12065550199",
                                                       aiosmpplib.TON.INTERNATIONAL)))

        producer = asyncio.create_task(produce())
        await asyncio.sleep(1.0)  # bind + warm up
        start, before = time.perf_counter(), hook.answered
        await asyncio.sleep(seconds)
        rate = (hook.answered - before) / (time.perf_counter() - start)
        stop = True
        producer.cancel()
        await esme.stop()
        runner.cancel()
        return rate

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.smpp_clients_bench",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"intercept": [], "smpplib": [], "aiosmpplib": []}
    with peer("loadtest.smsc", "--port", "0", "--no-receipts") as (_, port):
        for _ in range(args.runs):
            results["intercept"].append(trio.run(submit_rate, port, args.window, args.seconds))
            results["smpplib"].append(smpplib_rate(port, args.window, args.seconds))
            rate = aiosmpplib_rate(port, args.seconds)
            if rate is not None:
                results["aiosmpplib"].append(rate)
    medians = {name: statistics.median(rates) for name, rates in results.items() if rates}
    if args.json:
        print(json.dumps({"median_per_s": medians, "runs": results, "window": args.window}))
        return
    best_other = max((v for k, v in medians.items() if k != "intercept"), default=None)
    print(f"submit_sm/s over one bind, window {args.window}, median of {args.runs} runs of "
          f"{args.seconds:g} s:")
    for name, value in medians.items():
        print(f"  {name:<11} {value:>9,.0f}   runs: "
              + ", ".join(f"{r:,.0f}" for r in results[name]))
    if best_other:
        print(f"  intercept / fastest other: {medians['intercept'] / best_other:.2f}x")


if __name__ == "__main__":
    main()
