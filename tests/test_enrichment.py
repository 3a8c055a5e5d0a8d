"""Offline enrichment of buyer numbers: in a worker thread, stored once, buyers only."""

from __future__ import annotations

import trio

from intercept.buyers.enrichment import Enricher, enrich
from intercept.runtime.clock import WallClock
from intercept.store import Ingest, Store
from intercept.store.campaigns import RegisterNumbers

DECOY, OUTREACH = "+12065550100", "+12065550130"


def test_enrich_reads_phonenumbers_metadata():
    (seattle, bad, london) = enrich(["+12065550199", "+1206555", "+447400123456"])
    assert seattle.valid and seattle.region == "US" and seattle.place == "Washington State"
    assert seattle.timezone == "America/Los_Angeles" and seattle.type
    assert not bad.valid
    assert london.region == "GB" and london.type == "mobile"


def test_only_buyer_numbers_are_enriched_in_a_worker_thread_once(tmp_path):
    async def main() -> None:
        store = Store(tmp_path / "e.db")
        clock = WallClock()
        enricher = Enricher(store=store, clock=clock.now, threaded=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.call(RegisterNumbers([(DECOY, "buyer", "seattle"),
                                              (OUTREACH, "outreach", "seattle")],
                                             now=clock.now()))
            for i, (ours, theirs) in enumerate([(DECOY, "+12065550199"),
                                                (DECOY, "+447400123456"),
                                                (OUTREACH, "+12065550166")]):
                await store.call(Ingest(gateway="t", gateway_id=str(i), our=ours, their=theirs,
                                        body="hi", received_at=clock.now()))
            assert await enricher.catch_up() == 2
            assert await enricher.catch_up() == 0  # stored: never computed again
            rows = store.query("SELECT number, valid, region FROM number_info ORDER BY 1")
            assert rows == [("+12065550199", 1, "US"), ("+447400123456", 1, "GB")]
            store.close()
        store.shutdown()

    trio.run(main)
