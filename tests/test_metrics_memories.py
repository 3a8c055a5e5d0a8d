"""The bounded memories on /metrics: entries now and the bound, for the soak and the operator."""

from __future__ import annotations

from intercept.foundation.metrics import Metrics
from intercept.gateways.smpp.client import SmppGateway
from intercept.gateways.twilio import TwilioGateway, TwilioSettings

from helpers import OUR, running


def _memory(metrics: Metrics, name: str) -> tuple[float | None, float | None]:
    get = metrics.registry.get_sample_value
    return (get("intercept_memory_entries", {"memory": name}),
            get("intercept_memory_bound", {"memory": name}))


async def test_the_server_exports_its_conversation_cache_and_number_lookups(tmp_path):
    async with running(tmp_path) as (server, phones):
        entries, bound = _memory(server.metrics, "store_conversations")
        assert (entries, bound) == (0.0, 100_000.0)
        for i in range(3):
            await server.gateway.inject(their_number=f"+1206555020{i}", our_number=OUR,
                                        text="hi")
        await phones.wait_for(3)
        assert _memory(server.metrics, "store_conversations") == (3.0, 100_000.0)
        assert _memory(server.metrics, "number_lookups")[1] == 10_000.0
        assert b"intercept_memory_entries{memory=\"store_conversations\"} 3.0" in (
            server.metrics.render())


def test_the_gateways_export_their_dedupe_and_id_memories():
    metrics = Metrics()
    SmppGateway(host="127.0.0.1", port=1, system_id="x", password="y").use_metrics(metrics)
    assert _memory(metrics, "smpp_mo_dedupe") == (0.0, 200_000.0)
    assert _memory(metrics, "smpp_submit_plans") == (0.0, 100_000.0)
    TwilioGateway(TwilioSettings(account_sid="AC1", auth_token="t")).use_metrics(metrics)
    assert _memory(metrics, "provider_sids")[0] == 0.0
    assert _memory(metrics, "provider_callbacks")[1] is not None
