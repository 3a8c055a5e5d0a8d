"""Experiments: a scenario's split declared `experiment: NAME`, or a campaign's opening
variants, compared branch by branch (`intercept report --experiment` / `--campaign`).

A conversation belongs to a branch by the tag its split recorded (``record:branch``) or, for a
campaign, by the variant its first text used. Buyer conversations count only through the
buyer-only gate (`reads.BUYER_ONLY_SQL`), as in the rest of the report. Every proportion comes
with its 95% Wilson interval, and each figure with the conversations per branch a two-sided
test (alpha 0.05, power 0.8) needs to detect a difference of `effect` from the rate over all
branches (`foundation.stats.needed_per_group`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import msgspec

from ..foundation.stats import Mean, Proportion, mean_interval, needed_per_group, wilson
from .campaigns import HANDED_OFF_SQL
from .reads import BUYER_ONLY_SQL
from .report import DETERRED, POSITIVE
from .returns import WINDOWS, BuyerReturn, buyer_returns

_OUT = "('sent', 'delivered')"


class SplitRef(msgspec.Struct, frozen=True):
    """Where an experiment is declared: a scenario, its split's record variable and branches."""

    scenario: str
    record: str
    branches: tuple[str, ...]


class Arm(msgspec.Struct):
    """One branch (or campaign variant) with its figures."""

    name: str
    conversations: int = 0
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    """Outcome -> conversations (``open``: not ended)."""
    rates: dict[str, Proportion] = msgspec.field(default_factory=dict)
    length: Mean | None = None
    """Messages per conversation, both ways (ours only if they went out)."""


class Comparison(msgspec.Struct):
    """The branches of one experiment or campaign, side by side."""

    kind: str
    """``experiment`` or ``campaign``."""
    name: str
    arms: list[Arm]
    effect: float
    needed: dict[str, int | None]
    """Figure -> conversations per branch needed to detect `effect`."""
    scenarios: list[str] = msgspec.field(default_factory=list)


def _finish(kind: str, name: str, arms: list[Arm], counts: dict[str, dict[str, tuple[int, int]]],
            effect: float, scenarios: list[str]) -> Comparison:
    """Intervals per arm and the sample size per figure, from (successes, trials) counts."""
    figures = list(dict.fromkeys(f for per in counts.values() for f in per))
    needed: dict[str, int | None] = {}
    for figure in figures:
        successes = sum(counts[a.name].get(figure, (0, 0))[0] for a in arms)
        trials = sum(counts[a.name].get(figure, (0, 0))[1] for a in arms)
        needed[figure] = needed_per_group(successes / trials if trials else None, effect)
        for arm in arms:
            arm.rates[figure] = wilson(*counts[arm.name].get(figure, (0, 0)))
    return Comparison(kind, name, arms, effect, needed, scenarios)


def compare_experiment(conn: sqlite3.Connection, name: str, splits: Sequence[SplitRef], *,
                       as_of: float, city_of_number: Callable[[str], str],
                       since: float | None = None, city: str | None = None,
                       effect: float = 0.1) -> Comparison:
    """The branches of experiment `name`, declared by `splits`."""
    branches = list(dict.fromkeys(b for s in splits for b in s.branches))
    arms = {b: Arm(b) for b in branches}
    lengths: dict[str, list[float]] = {b: [] for b in branches}
    counts: dict[str, dict[str, list[int]]] = {b: {} for b in branches}
    firsts: dict[int, BuyerReturn] = {
        r.conversation_id: r for r in buyer_returns(conn, city_of_number=city_of_number)}
    start = since if since is not None else float("-inf")

    def count(branch: str, figure: str, success: bool, trial: bool = True) -> None:
        pair = counts[branch].setdefault(figure, [0, 0])
        pair[0] += success and trial
        pair[1] += trial

    for split in splits:
        prefix = f"{split.record}:"
        for row in conn.execute(
                "SELECT c.id, c.our_number, c.kind, c.status, c.outcome, c.inbound_count, "
                "t.name, "
                f"(SELECT count(*) FROM outbox o WHERE o.conversation_id = c.id AND o.status "
                f"IN {_OUT}), "
                "(SELECT o.status FROM outbox o WHERE o.conversation_id = c.id AND o.kind = "
                f"'reply' ORDER BY o.position DESC LIMIT 1), {HANDED_OFF_SQL} "
                "FROM conversations c JOIN tags t ON t.conversation_id = c.id "
                "WHERE c.scenario = ? AND substr(t.name, 1, ?) = ? AND c.created_at >= ? "
                f"AND (c.kind = 'outreach' OR ({BUYER_ONLY_SQL}))",
                (split.scenario, len(prefix), prefix, start)):
            cid, our, kind, status, outcome, inbound, tag, out, last, handed = row
            branch = tag[len(prefix):]
            if branch not in arms or (city and city_of_number(our) != city):
                continue
            arm = arms[branch]
            arm.conversations += 1
            key = outcome if status == "ended" and outcome else (
                "open" if status != "ended" else "ended")
            arm.outcomes[key] = arm.outcomes.get(key, 0) + 1
            lengths[branch].append(inbound + out)
            count(branch, "deterrence sent",
                  outcome == DETERRED and last in ("sent", "delivered"))
            count(branch, "deterrence delivered", outcome == DETERRED and last == "delivered")
            count(branch, "handed off", bool(handed))
            first = firsts.get(cid) if kind == "buyer" else None
            for days in WINDOWS:
                judged = first is not None and first.observable(days, as_of)
                count(branch, f"came back {days}d",
                      first is not None and first.back_within(days), judged)
    every_outcome = sorted({o for arm in arms.values() for o in arm.outcomes})
    for arm in arms.values():
        arm.length = mean_interval(lengths[arm.name])
        for outcome in every_outcome:
            counts[arm.name][f"outcome {outcome}"] = [arm.outcomes.get(outcome, 0),
                                                      arm.conversations]
    return _finish("experiment", name, list(arms.values()),
                   {b: {f: (s, t) for f, (s, t) in c.items()} for b, c in counts.items()},
                   effect, sorted({s.scenario for s in splits}))


CAMPAIGN_FIGURES = ("replied", "positive", "handed off", "meeting", "opted out")


def compare_campaign(conn: sqlite3.Connection, name: str, *, effect: float = 0.1,
                     since: float | None = None, city: str | None = None) -> Comparison:
    """The opening variants of campaign `name`: of the numbers its first text reached (sent or
    delivered), how many replied, had a positive outcome, were handed off, had a meeting
    scheduled, opted out. A campaign without variants has one arm, ``-``."""
    start = since if since is not None else float("-inf")
    arms: dict[str, Arm] = {}
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    lengths: dict[str, list[float]] = {}
    for variant, inbound, out, handed, kinds, opted in conn.execute(
            "SELECT t.variant, c.inbound_count, "
            f"(SELECT count(*) FROM outbox o WHERE o.conversation_id = c.id AND o.status IN "
            f"{_OUT}), {HANDED_OFF_SQL}, "
            "(SELECT group_concat(DISTINCT a.kind) FROM advocate_outcomes a WHERE "
            "a.conversation_id = c.id), EXISTS (SELECT 1 FROM opt_outs x WHERE "
            "x.number = c.their_number AND x.opted_out) "
            "FROM campaign_targets t JOIN conversations c ON c.id = t.conversation_id "
            "WHERE t.campaign = ? AND t.status = 'sent' AND t.at >= ? AND (? IS NULL OR "
            "t.city = ?) AND EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id = c.id "
            f"AND o.kind = 'campaign' AND o.status IN {_OUT}) ORDER BY t.variant",
            (name, start, city, city)):
        key = variant or "-"
        arm = arms.setdefault(key, Arm(key))
        arm.conversations += 1
        outcomes = set((kinds or "").split(",")) - {""}
        for outcome in outcomes:
            arm.outcomes[outcome] = arm.outcomes.get(outcome, 0) + 1
        lengths.setdefault(key, []).append(inbound + out)
        got = {"replied": inbound > 0, "positive": bool(outcomes & set(POSITIVE)),
               "handed off": bool(handed), "meeting": "meeting_scheduled" in outcomes,
               "opted out": bool(opted)}
        per = counts.setdefault(key, {})
        for figure in CAMPAIGN_FIGURES:
            s, t = per.get(figure, (0, 0))
            per[figure] = (s + got[figure], t + 1)
    for key, arm in arms.items():
        arm.length = mean_interval(lengths[key])
    return _finish("campaign", name, list(arms.values()), counts, effect, [])
