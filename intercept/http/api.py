"""The admin API under /api/: conversations, the advocates' hand-off queue, stats, reload, audit.

Reads run on `Reads` (their own connections, never the writer); changes go through the
server's actions (`HttpServices.actions`: take-over, hand-back, reload, purge) or the writer
(`RecordOutcome`). Roles are checked and
calls audited by `App` from each `Route`'s declaration; handlers see an authenticated request.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from ..errors import ConfigError, ScenarioError, ScenarioErrors
from ..foundation.phone import mask, tagged_mask, to_e164
from ..store import reads as q
from ..store.advocacy import RecordedOutcome, RecordOutcome
from ..store.campaigns import SKIP_REASONS, campaign_counts
from ..store.handoffs import HandoffRow, open_handoff
from ..store.report_document import read_report, report_document
from ..store.retention import purge_detail
from . import schemas as s
from .auth import Role
from .handoff_routes import HandoffRoutes, handoff_shape
from .routing import HTTPError, Request, Response, Route, json_response

if TYPE_CHECKING:
    from ..store.reads import Reads
    from .services import HttpServices

log = logging.getLogger(__name__)


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _parse_time(text: str, name: str, *, end: bool) -> float:
    """A date (YYYY-MM-DD, UTC; as an end, the whole day is included) or an ISO 8601 time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return (moment + timedelta(days=1) if end else moment).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPError(400, f"query parameter {name!r}: {text!r} is not a date (YYYY-MM-DD) "
                             "or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _filters(query: s.ConversationQuery, their: str | None) -> str:
    """The filters of a conversation search for the audit log, a searched number masked."""
    shown = {name: getattr(query, name) for name in (
        "status", "outcome", "city", "scenario", "version", "since", "until", "operator",
        "tag")}
    parts = [f"{k}={v}" for k, v in shown.items() if v is not None]
    if their is not None:
        parts.insert(0, f"number={mask(their)}")
    return ", ".join(parts)


def _listed(shown: int, total: int, offset: int, role: Role, filters: str) -> str:
    """An audited list: how many conversations (and so numbers) it showed, and how."""
    numbers = "full numbers" if role >= Role.advocate else "masked numbers"
    return (f"{shown} of {total} from {offset} with {numbers}"
            + (f"; {filters}" if filters else ""))


class Api:
    """The handlers of /api/; `routes()` lists them with their roles and shapes."""

    def __init__(self, services: HttpServices, reads: Reads):
        self.services = services
        self.actions = services.actions
        self.reads = reads
        self._numbers_seen: object = None

    def _our_numbers(self) -> None:
        """Index our numbers by city again when a reload replaced them."""
        config = self.services.config
        if self._numbers_seen is config.numbers:
            return
        self._city_of = {n.number: n.city for n in config.numbers}
        self._numbers_of = {key: tuple(n.number for n in config.numbers if n.city == key)
                            for key in config.cities}
        self._numbers_seen = config.numbers

    @property
    def city_of(self) -> dict[str, str]:
        """Our number -> its city key (as of the last reload)."""
        self._our_numbers()
        return self._city_of

    @property
    def numbers_of(self) -> dict[str, tuple[str, ...]]:
        """City key -> our numbers there."""
        self._our_numbers()
        return self._numbers_of

    def routes(self) -> list[Route]:
        conversation = ("conversations",)
        advocates = ("advocates",)
        err = s.ErrorBody
        return [
            Route("GET", "/api/me", self.me, "Who the token belongs to", role=Role.viewer,
                  responses={200: s.Me}, tags=("auth",)),
            Route("GET", "/api/conversations", self.list_conversations,
                  "List and search conversations", role=Role.viewer, audit=True,
                  query=s.ConversationQuery, responses={200: s.ConversationPage},
                  tags=conversation, description="Newest first. Numbers are masked for the "
                  "viewer role; filtering by `number` needs the advocate role. Every list "
                  "and search is audited (the number searched for masked)."),
            Route("GET", "/api/conversations/{id}", self.get_conversation,
                  "One conversation with its transcript", role=Role.viewer, audit=True,
                  responses={200: s.ConversationDetail, 404: err}, tags=conversation,
                  description="Inbound and outbound messages merged by time, with tags, "
                  "funnel transitions and advocate outcomes. Every read is audited."),
            Route("POST", "/api/conversations/{id}/messages", self.send_message,
                  "Text into a conversation as a human (take-over)", role=Role.advocate,
                  audit=True, body=s.OperatorMessage,
                  responses={200: s.OperatorMessageQueued, 404: err, 409: err},
                  tags=conversation, description="The bot stays silent in the conversation "
                  "until it is handed back. The message claims the conversation's hand-off "
                  "for its author (`sent_by` in the transcript). 409 when the number opted "
                  "out, or another advocate claimed the hand-off (an admin may still text)."),
            Route("POST", "/api/conversations/{id}/hand-back", self.hand_back,
                  "Give the conversation back to the bot", role=Role.advocate, audit=True,
                  body=s.HandBackRequest, responses={200: s.HandedBack, 404: err, 409: err},
                  tags=conversation,
                  description="Closes its hand-off. 409 when no human has the conversation, "
                  "or another advocate claimed its hand-off (an admin may still)."),
            Route("GET", "/api/conversations/{id}/outcomes", self.list_outcomes,
                  "Outcomes advocates recorded on a conversation", role=Role.viewer,
                  responses={200: s.OutcomeList, 404: err}, tags=advocates),
            Route("POST", "/api/conversations/{id}/outcomes", self.record_outcome,
                  "Record an outcome", role=Role.advocate, audit=True, body=s.OutcomeRequest,
                  responses={201: s.Outcome, 404: err}, tags=advocates,
                  description="Several outcomes per conversation are allowed; kind `other` "
                  "needs a note."),
            Route("GET", "/api/queue", self.queue, "The advocates' hand-off queue",
                  role=Role.viewer, audit=True, query=s.PageQuery,
                  responses={200: s.QueuePage}, tags=advocates,
                  description="Conversations handed off by the scenario or taken over by a "
                  "human, the longest waiting first. Every read is audited."),
            Route("GET", "/api/stats", self.stats, "Counts over the whole store",
                  role=Role.viewer, responses={200: s.Stats}, tags=("server",)),
            Route("GET", "/api/report", self.report,
                  "The impact report per city, with return contacts", query=s.ReportQuery,
                  role=Role.viewer, responses={200: s.ImpactReport, 400: s.ErrorBody},
                  tags=("reports",), description="The figures `intercept report --json` "
                  "prints: victim outreach and buyer deterrence per city and in total, and "
                  "return contacts per city and period with 95% Wilson intervals. Counts "
                  "only; conversations removed by retention still count."),
            Route("POST", "/api/scenarios/reload", self.reload,
                  "Reload the scenario folder and the config's numbers and cities",
                  role=Role.admin, audit=True,
                  responses={200: s.ReloadResult, 422: s.ReloadRefused}, tags=("server",),
                  description="All or nothing: on any error (a broken scenario, an invalid "
                  "config file, a change to what only a restart can change) the running "
                  "versions and config stay."),
            Route("GET", "/api/numbers/health", self.numbers_health,
                  "Failed deliveries per number", role=Role.viewer,
                  responses={200: s.NumberHealthList}, tags=("numbers",),
                  description="Each of our numbers' messages settled in the [health] window, "
                  "the failed share and its reasons, and whether campaigns pause it. As of the "
                  "server's last check (every [health] interval)."),
            Route("GET", "/api/campaigns", self.campaigns, "Campaigns and their progress",
                  role=Role.viewer, query=s.CampaignQuery, responses={200: s.CampaignList,
                                                                      404: err},
                  tags=("campaigns",), description="Every [[campaigns]] entry of the config "
                  "with its live figures: targets, texted, sent, queued, held for quiet hours, "
                  "skipped, replied, handed off."),
            Route("POST", "/api/campaigns/start", self.start_campaign,
                  "Start or resume a campaign", role=Role.admin, audit=True,
                  body=s.CampaignRequest, responses={200: s.CampaignChanged, 404: err},
                  tags=("campaigns",), description="Texts go out only inside the window in "
                  "each recipient's local time, at the campaign's rates. Starting a running "
                  "campaign changes nothing."),
            Route("POST", "/api/campaigns/pause", self.pause_campaign, "Pause a campaign",
                  role=Role.admin, audit=True, body=s.CampaignRequest,
                  responses={200: s.CampaignChanged, 404: err}, tags=("campaigns",),
                  description="No new texts until it is started again; replies are still "
                  "answered."),
            Route("POST", "/api/purge", self.purge, "Delete old conversations (retention)",
                  role=Role.admin, audit=True, body=s.PurgeRequest,
                  responses={200: s.PurgeResult, 400: err}, tags=("server",),
                  description="Deletes the conversations of one kind whose last activity is "
                  "older than `older_than`, with their messages, tags, transitions, media rows "
                  "and unreferenced media files; keeps their counts for the impact report."),
            Route("GET", "/api/audit", self.audit, "The audit log, newest first",
                  role=Role.admin, query=s.AuditQuery, responses={200: s.AuditPage},
                  tags=("server",)),
            *HandoffRoutes(read=self.reads.run, write=self.services.store.call,
                           now=self.services.now,
                           conversation=self._conversation).routes(),
        ]

    # -- shapes

    def _conversation(self, row: q.ConversationRow, request: Request) -> s.Conversation:
        assert request.principal is not None
        full = request.principal.role >= Role.advocate
        return s.Conversation(
            id=row.id, our_number=row.our_number,
            their_number=row.their_number if full else tagged_mask(row.their_number),
            city=self.city_of.get(row.our_number), scenario=row.scenario, version=row.version,
            status=row.status, outcome=row.outcome, operator=row.operator,
            messages_in=row.inbound_count, messages_out=row.outbound_count, tags=list(row.tags),
            created_at=_time(row.created_at), updated_at=_time(row.updated_at),
            language=row.language)

    @staticmethod
    def _outcome(o: RecordedOutcome) -> s.Outcome:
        return s.Outcome(id=o.id, conversation_id=o.conversation_id, kind=o.kind, note=o.note,  # type: ignore[arg-type]
                         author=o.author, at=_time(o.at))

    # -- handlers

    async def me(self, request: Request) -> Response:
        assert request.principal is not None
        return json_response(200, s.Me(name=request.principal.name,
                                       role=request.principal.role.name))  # type: ignore[arg-type]

    async def list_conversations(self, request: Request) -> Response:
        query: s.ConversationQuery = request.query
        assert request.principal is not None
        our_numbers = None
        if query.city is not None:
            if query.city not in self.numbers_of:
                raise HTTPError(400, f"unknown city {query.city!r}; the cities are "
                                     f"{', '.join(sorted(self.numbers_of)) or 'none'}")
            our_numbers = self.numbers_of[query.city]
        their = None
        if query.number is not None:
            if request.principal.role < Role.advocate:
                raise HTTPError(403, "searching by phone number needs the advocate role")
            their = to_e164(query.number)
            if their is None:
                raise HTTPError(400, "query parameter 'number' is not a valid phone number")
        where = q.ConversationFilter(
            status=query.status, outcome=query.outcome, our_numbers=our_numbers,
            scenario=query.scenario, version=query.version,
            since=None if query.since is None else _parse_time(query.since, "since", end=False),
            until=None if query.until is None else _parse_time(query.until, "until", end=True),
            operator=query.operator, tag=query.tag, their_number=their)
        total, rows = await self.reads.run(q.list_conversations, where, query.limit,
                                           query.offset)
        return json_response(200, s.ConversationPage(
            total=total, limit=query.limit, offset=query.offset,
            items=[self._conversation(r, request) for r in rows]),
            detail=_listed(len(rows), total, query.offset, request.principal.role,
                           _filters(query, their)))

    async def get_conversation(self, request: Request) -> Response:
        cid = request.params["id"]

        def read(conn: sqlite3.Connection) -> tuple[q.ConversationDetail | None,
                                                    HandoffRow | None]:
            return q.conversation_detail(conn, cid), open_handoff(conn, cid)

        detail, handoff = await self.reads.run(read)
        if detail is None:
            raise HTTPError(404, f"no conversation {cid}")
        body = s.ConversationDetail(
            conversation=self._conversation(detail.conversation, request),
            transcript=[s.TranscriptEntry(direction=line.direction, at=_time(line.at),  # type: ignore[arg-type]
                                          id=line.id, text=line.text, media=list(line.media),
                                          kind=line.kind, status=line.status, error=line.error,
                                          sent_by=line.sent_by)
                        for line in detail.transcript],
            tags=[s.TagEntry(name=name, at=_time(at)) for name, at in detail.tags],
            transitions=[s.TransitionEntry(turn=t.turn, source=t.source, target=t.target,
                                           trigger=t.trigger, scenario=t.scenario,
                                           version=t.version, at=_time(t.at))
                         for t in detail.transitions],
            outcomes=[self._outcome(o) for o in detail.outcomes],
            handoff=None if handoff is None else handoff_shape(handoff))
        return json_response(200, body, detail=f"{len(detail.transcript)} messages")

    async def send_message(self, request: Request) -> Response:
        cid = request.params["id"]
        message: s.OperatorMessage = request.data
        assert request.principal is not None
        try:
            row = await self.actions.take_over(cid, message.text, author=request.principal.name,
                                               override=request.principal.role >= Role.admin)
        except LookupError:
            raise HTTPError(404, f"no conversation {cid}") from None
        except PermissionError as exc:
            raise HTTPError(409, f"conversation {cid}: {exc}") from None
        except ValueError as exc:
            raise HTTPError(400, f"conversation {cid}: {exc}") from None
        return json_response(200, s.OperatorMessageQueued(id=row.id, conversation_id=cid),
                             detail=f"queued {row.id} ({len(message.text)} characters)")

    async def hand_back(self, request: Request) -> Response:
        cid = request.params["id"]
        assert request.principal is not None
        row = await self.reads.run(q.get_conversation, cid)
        if row is None:
            raise HTTPError(404, f"no conversation {cid}")
        if not row.operator and row.status != "handed_off":
            raise HTTPError(409, f"conversation {cid} is not with a human (status "
                                 f"{row.status}): there is nothing to hand back")
        held = await self.reads.run(open_handoff, cid)
        if (held is not None and held.claimed_by not in (None, request.principal.name)
                and request.principal.role < Role.admin):
            raise HTTPError(409, f"conversation {cid}: advocate {held.claimed_by!r} has claimed "
                                 "this hand-off; ask them to hand it back, or an admin")
        try:
            await self.actions.hand_back(cid, author=request.principal.name)
        except LookupError:
            raise HTTPError(404, f"no conversation {cid}") from None
        return json_response(200, s.HandedBack(conversation_id=cid),
                             detail=f"was {row.status}" + (", taken over" if row.operator
                                                           else ""))

    async def list_outcomes(self, request: Request) -> Response:
        cid = request.params["id"]

        def read(conn: sqlite3.Connection) -> list[RecordedOutcome] | None:
            if q.get_conversation(conn, cid) is None:
                return None
            return q.outcomes(conn, cid)

        found = await self.reads.run(read)
        if found is None:
            raise HTTPError(404, f"no conversation {cid}")
        return json_response(200, s.OutcomeList(items=[self._outcome(o) for o in found]))

    async def record_outcome(self, request: Request) -> Response:
        cid = request.params["id"]
        body: s.OutcomeRequest = request.data
        assert request.principal is not None
        try:
            op = RecordOutcome(cid, body.kind, note=body.note.strip(),
                               author=request.principal.name, now=self.services.now())
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        recorded = await self.services.store.call(op)
        if recorded is None:
            raise HTTPError(404, f"no conversation {cid}")
        log.info("conversation %d: outcome %s recorded by %s", cid, body.kind,
                 request.principal.name)
        return json_response(201, self._outcome(recorded), detail=f"outcome {body.kind}")

    async def queue(self, request: Request) -> Response:
        page: s.PageQuery = request.query
        total, rows = await self.reads.run(q.queue, page.limit, page.offset)
        items = [s.QueueEntry(
            conversation=self._conversation(r.conversation, request),
            waiting_since=None if r.waiting_since is None else _time(r.waiting_since),
            unanswered=r.unanswered,
            last_message_at=None if r.last_message_at is None else _time(r.last_message_at),
            outcomes=list(r.outcomes))  # type: ignore[arg-type]
            for r in rows]
        assert request.principal is not None
        return json_response(200, s.QueuePage(total=total, limit=page.limit,
                                              offset=page.offset, items=items),
                             detail=_listed(len(items), total, page.offset,
                                            request.principal.role, ""))

    async def stats(self, request: Request) -> Response:
        rows = await self.reads.run(q.stats)
        by_city: dict[str, int] = {}
        for number, count in rows.by_our_number.items():
            city = self.city_of.get(number, "unknown")
            by_city[city] = by_city.get(city, 0) + count
        health = self.actions.health()
        return json_response(200, s.Stats(
            conversations=rows.conversations, by_status=rows.by_status,
            by_outcome=rows.by_outcome,
            by_scenario=[s.ScenarioCount(scenario=n, version=v, conversations=c)
                         for n, v, c in rows.by_scenario],
            by_city=by_city, messages_in=rows.messages_in, messages_out=rows.messages_out,
            with_a_human=rows.with_a_human, opted_out=rows.opted_out,
            advocate_outcomes=rows.advocate_outcomes,
            live_actors=int(health.get("live_actors", 0)),
            outbox_depth=int(health.get("outbox_depth", 0))))

    async def report(self, request: Request) -> Response:
        query: s.ReportQuery = request.query
        if query.city is not None and query.city not in self.numbers_of:
            raise HTTPError(400, f"unknown city {query.city!r}; the cities are "
                                 f"{', '.join(sorted(self.numbers_of)) or 'none'}")
        since = None if query.since is None else _parse_time(query.since, "since", end=False)
        result, returns = await self.reads.run(
            partial(read_report, city_of=dict(self.city_of), as_of=self.services.now(),
                    since=since, city=query.city, period=query.period))
        return json_response(200, s.ImpactReport(**report_document(result, returns,
                                                                   since=since)))

    async def reload(self, request: Request) -> Response:
        try:
            reloaded = await self.actions.reload()
        except ConfigError as exc:
            return json_response(422, s.ReloadRefused(ok=False, errors=str(exc).splitlines()),
                                 detail="refused: the config file")
        except ScenarioErrors as exc:
            return json_response(422, s.ReloadRefused(ok=False,
                                                      errors=[e.render() for e in exc.errors]),
                                 detail=f"refused: {len(exc.errors)} errors")
        except ScenarioError as exc:
            return json_response(422, s.ReloadRefused(ok=False, errors=[exc.render()]),
                                 detail="refused: 1 error")
        report, numbers = reloaded.scenarios, reloaded.numbers
        return json_response(200, s.ReloadResult(
            ok=True, summary=reloaded.summary(),
            added=[f"{n} v{v}" for n, v in report.added],
            unchanged=[f"{n} v{v}" for n, v in report.unchanged],
            numbers=s.ReloadedNumbers(added=len(numbers.added), removed=len(numbers.removed),
                                      changed=len(numbers.changed), cities=numbers.cities)
            if numbers.any else None),
            detail=reloaded.summary())

    async def _campaign(self, name: str) -> s.CampaignStatus:
        runner = self.services.campaigns
        try:
            spec = runner.spec(name)
        except LookupError as exc:
            raise HTTPError(404, str(exc)) from None
        counts = await self.reads.run(campaign_counts, name, spec.campaign.city)
        p = runner.progress(name, counts, self.services.now())
        skipped = {reason: p.skipped.get(reason, 0) for reason in SKIP_REASONS}
        return s.CampaignStatus(
            name=p.name, city=p.city, status=p.status,  # type: ignore[arg-type]
            scenario=spec.campaign.scenario, numbers=list(spec.campaign.numbers),
            window=p.window, started_at=None if p.started_at is None else _time(p.started_at),
            targets=p.targets, texted=p.texted, sent=p.sent, queued=p.queued, failed=p.failed,
            held=p.held, waiting=p.waiting, skipped=s.CampaignSkipped(**skipped),
            replied=p.replied, handed_off=p.handed_off, opted_out=p.opted_out)

    async def numbers_health(self, request: Request) -> Response:
        monitor = self.services.number_health
        items = []
        for n in self.services.config.numbers:
            one = monitor.latest.get(n.number)
            if one is None:
                continue
            items.append(s.NumberHealthItem(
                number=n.number, kind=n.kind, settled=one.settled, delivered=one.delivered,
                failed=one.failed, failure_share=round(one.failure_share, 4),
                reasons=dict(one.reasons), paused=n.number in monitor.paused))
        return json_response(200, s.NumberHealthList(
            window=str(self.services.config.health.window), checked_at=monitor.checked_at,
            items=items))

    async def campaigns(self, request: Request) -> Response:
        query: s.CampaignQuery = request.query
        names = ([query.name] if query.name is not None
                 else [c.name for c in self.services.config.campaigns])
        return json_response(200, s.CampaignList(items=[await self._campaign(n)
                                                        for n in names]))

    async def start_campaign(self, request: Request) -> Response:
        return await self._change_campaign(request, start=True)

    async def pause_campaign(self, request: Request) -> Response:
        return await self._change_campaign(request, start=False)

    async def _change_campaign(self, request: Request, *, start: bool) -> Response:
        body: s.CampaignRequest = request.data
        assert request.principal is not None
        runner = self.services.campaigns
        change = runner.start if start else runner.pause
        try:
            previous = await change(body.name, actor=request.principal.name)
        except LookupError as exc:
            raise HTTPError(404, str(exc)) from None
        status = await self._campaign(body.name)
        return json_response(200, s.CampaignChanged(campaign=status,
                                                    previous=previous or "idle"),  # type: ignore[arg-type]
                             detail=f"campaign {body.name}: was {previous or 'idle'}, now "
                                    f"{status.status}")

    async def audit(self, request: Request) -> Response:
        query: s.AuditQuery = request.query
        total, rows = await self.reads.run(partial(
            q.audit_log, limit=query.limit, offset=query.offset, actor=query.actor,
            conversation_id=query.conversation_id))
        return json_response(200, s.AuditPage(
            total=total, limit=query.limit, offset=query.offset,
            items=[s.AuditEntry(id=r.id, at=_time(r.at), actor=r.actor, role=r.role,
                                action=r.action, conversation_id=r.conversation_id,
                                status=r.status, detail=r.detail) for r in rows]))

    async def purge(self, request: Request) -> Response:
        from ..engine.durations import parse_duration

        body: s.PurgeRequest = request.data
        try:
            seconds = parse_duration(body.older_than)
        except ValueError as exc:
            raise HTTPError(400, f"older_than: {exc}") from None
        if seconds < 86400:
            raise HTTPError(400, f"older_than: {body.older_than!r} is less than a day; give "
                                 "e.g. 180d")
        result = await self.actions.purge(body.kind, seconds, dry_run=body.dry_run)
        return json_response(200, s.PurgeResult(
            kind=body.kind, cutoff=_time(result.cutoff), dry_run=result.dry_run,
            conversations=result.conversations, messages_in=result.messages_in,
            messages_out=result.messages_out, media=result.media,
            files_deleted=result.files_deleted, skipped=result.skipped),
            detail=purge_detail(result, body.older_than))
