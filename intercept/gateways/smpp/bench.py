"""Codec speed: ``python -m intercept.gateways.smpp.bench`` prints operations per second.

Single-threaded, pure Python; each figure is the best of five runs. The decoder is fed 100 PDUs
per chunk, as a busy connection delivers them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .codec import Decoder, DeliverSm, SubmitSm, encode, response_for
from .concat import Reassembler
from .encoding import decode_sm, split
from .receipt import receipt_from_pdu

SUBMIT = SubmitSm(sequence=1, source_addr_ton=1, source_addr_npi=1, source_addr="15550001",
                  dest_addr_ton=1, dest_addr_npi=1, destination_addr="15550002",
                  registered_delivery=1, short_message=b"Hey, are you still free tonight?")
MO = DeliverSm(sequence=2, source_addr_ton=1, source_addr_npi=1, source_addr="15550002",
               dest_addr_ton=1, dest_addr_npi=1, destination_addr="15550001",
               short_message=b"How much for an hour? Where are you?")
RECEIPT = DeliverSm(sequence=3, source_addr="15550002", destination_addr="15550001",
                    esm_class=0x04, receipted_message_id="5f3c9a0e-0001", message_state=2,
                    short_message=b"id:5f3c9a0e-0001 sub:001 dlvrd:001 submit date:2401011200 "
                                  b"done date:2401011201 stat:DELIVRD err:000 text:Hey")
BATCH = 100


def _rate(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def _decode_rate(pdu: SubmitSm | DeliverSm, rounds: int) -> float:
    chunk = encode(pdu) * BATCH

    def run() -> None:
        decoder = Decoder()
        decoder.feed(chunk)
        for _ in decoder:
            pass

    return _rate(run, rounds) * BATCH


def main() -> None:
    n = 20_000
    results = {}
    for name, pdu in (("submit_sm", SUBMIT), ("deliver_sm", MO), ("deliver_sm receipt", RECEIPT)):
        enc = _rate(lambda pdu=pdu: encode(pdu), n)
        dec = _decode_rate(pdu, n // BATCH)
        results[name] = (enc, dec, 1 / (1 / enc + 1 / dec))
    for name, (enc, dec, both) in results.items():
        print(f"{name:22} encode {enc:>10,.0f}/s   decode {dec:>10,.0f}/s   "
              f"encode+decode {both:>10,.0f}/s")
    text = "Thanks for getting back to me. " * 6  # 186 septets: two parts
    template = SUBMIT

    def outbound() -> None:
        for i, part in enumerate(split(text, ref=9), 1):
            encode(part.submit_sm(template, sequence=i))

    print(f"{'split+encode, 2 parts':22} {_rate(outbound, n):>10,.0f} long messages/s")
    frame = encode(MO)
    reassembler = Reassembler()

    def inbound() -> None:
        decoder = Decoder()
        decoder.feed(frame)
        pdu = decoder.next_pdu()
        assert isinstance(pdu, DeliverSm)
        reassembler.add(pdu.source_addr, pdu.destination_addr, decode_sm(pdu), 0.0)
        encode(response_for(pdu))

    print(f"{'MO in, text, resp out':22} {_rate(inbound, n):>10,.0f} messages/s")
    receipts = _rate(lambda: receipt_from_pdu(RECEIPT), n)
    print(f"{'receipt_from_pdu':22} {receipts:>10,.0f} receipts/s")


if __name__ == "__main__":
    main()
