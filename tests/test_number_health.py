"""Number health: failure reasons, the window query, the paused gauge, and `intercept numbers
--health`."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlite_utils
from prometheus_client import CollectorRegistry

from intercept.runtime.number_health import NumberHealthMonitor
from intercept.store.health import Health, NumberHealth, failure_reason, number_health
from intercept.store.schema import migrate


@pytest.mark.parametrize(("error", "reason"), [
    ("provider error 30007", "carrier_filtered"),
    ("provider error 30034", "unregistered_sender"),
    ("provider error 21610", "carrier_opt_out"),
    ("provider error 30003", "unreachable"),
    ("provider error 99999", "other"),
    ("UNDELIV err:001", "unreachable"),
    ("EXPIRED", "expired"),
    ("REJECTD err:00b", "rejected"),
    ("the SMSC refused the message: submit_sm_resp ESME_RINVDSTADR", "rejected"),
    (None, "other"),
])
def test_each_failure_gets_one_reason(error, reason):
    assert failure_reason(error) == reason


def _store() -> sqlite3.Connection:
    db = sqlite_utils.Database(sqlite3.connect(":memory:"))
    migrate(db)
    db.execute("INSERT INTO conversations (id, our_number, their_number) VALUES (1, 'a', 'b')")
    return db.conn


def _row(conn, i, our, status, error, at):
    conn.execute("INSERT INTO outbox (id, conversation_id, position, our_number, body, status, "
                 "error, updated_at) VALUES (?, 1, ?, ?, 'x', ?, ?, ?)",
                 (str(i), i, our, status, error, at))


def test_only_settled_rows_inside_the_window_count():
    conn = _store()
    for i in range(4):
        _row(conn, i, "+1a", "failed", "provider error 30007", 1000.0)
    _row(conn, 10, "+1a", "delivered", None, 1000.0)
    _row(conn, 11, "+1a", "failed", "EXPIRED", 10.0)  # before the window
    _row(conn, 12, "+1a", "queued", None, 1000.0)  # not settled
    health = number_health(conn, since=500.0, numbers=["+1a", "+1quiet"])
    a = health["+1a"]
    assert (a.delivered, a.failed, a.failure_share) == (1, 4, 0.8)
    assert dict(a.reasons) == {"carrier_filtered": 4}
    assert health["+1quiet"].settled == 0 and health["+1quiet"].failure_share == 0.0


def test_the_window_query_uses_the_settled_index():
    conn = _store()
    plan = " ".join(r[-1] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT our_number, status, error, count(*) FROM outbox "
        "WHERE status IN ('delivered', 'failed') AND updated_at >= ? "
        "GROUP BY our_number, status, error", (0,)))
    assert "outbox_settled" in plan


def test_health_json_is_serialisable():
    conn = _store()
    _row(conn, 1, "+1a", "failed", "UNDELIV", 1000.0)
    health = number_health(conn, since=0.0)["+1a"]
    assert json.dumps(dict(health.reasons)) == '{"unreachable": 1}'


class _Store:
    """Answers the monitor's reads with the given figures; keeps what else it is asked."""

    def __init__(self, health: dict[str, Health]):
        self.health, self.calls = health, []

    async def call(self, op: object) -> object:
        self.calls.append(op)
        return self.health if isinstance(op, NumberHealth) else None


async def test_a_paused_number_is_one_in_its_gauge_until_it_recovers():
    store = _Store({"+1bad": Health("+1bad", delivered=5, failed=15),
                    "+1ok": Health("+1ok", delivered=19, failed=1)})
    registry = CollectorRegistry()
    monitor = NumberHealthMonitor(store=store, numbers=["+1bad", "+1ok"], clock=lambda: 1e6,
                                  registry=registry, window=86400, min_messages=20,
                                  pause_share=0.25, interval=60)
    await monitor.check()
    paused = {n: registry.get_sample_value("intercept_number_paused", {"number": n})
              for n in ("+1bad", "+1ok")}
    assert paused == {"+1bad": 1.0, "+1ok": 0.0}
    store.health = {"+1bad": Health("+1bad", delivered=20), "+1ok": Health("+1ok")}
    await monitor.check()
    assert registry.get_sample_value("intercept_number_paused", {"number": "+1bad"}) == 0.0
