"""The sans-IO SMPP session, driven with bytes only: bind, window, responses, enquire_link,
timeouts, unbind both ways, garbage, and random PDU sequences (hypothesis)."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercept.errors import GatewayProtocolError, LocalProtocolError, RemoteProtocolError
from intercept.gateways.smpp import (
    MAX_SEQUENCE,
    Answered,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    Closed,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    Decoder,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Malformed,
    Pdu,
    Received,
    Replied,
    Session,
    State,
    Stray,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    encode,
)
from intercept.gateways.smpp import session as session_module

TIMEOUT = 30.0
INTERVAL = 60.0


def new_session(window: int = 10) -> Session:
    return Session(window=window, timeout=TIMEOUT, enquire_link_interval=INTERVAL, now=0.0)


def pdus(data: bytes) -> list[Pdu]:
    """What the SMSC would read from `data`."""
    decoder = Decoder()
    decoder.feed(data)
    found = list(decoder)
    assert all(isinstance(p, Pdu) for p in found), found
    return found  # type: ignore[return-value]


def events(session: Session, data: bytes = b"", now: float = 1.0) -> list[object]:
    if data:
        session.receive_data(data, now)
    found = []
    while (event := session.next_event()) is not None:
        found.append(event)
    return found


def bound(window: int = 10) -> Session:
    session = new_session(window)
    data = session.send(BindTransceiver(sequence=session.next_sequence(), system_id="us",
                                        password="pw"), now=0.0)
    [bind] = pdus(data)
    [answered] = events(session, encode(BindTransceiverResp(sequence=bind.sequence,
                                                             system_id="smsc")))
    assert isinstance(answered, Answered)
    assert session.state is State.BOUND
    return session


def submit(session: Session, now: float = 1.0, token: object = None) -> int:
    sequence = session.next_sequence()
    session.send(SubmitSm(sequence=sequence, destination_addr="15550001",
                          short_message=b"hi"), now=now, token=token)
    return sequence


def test_bind_then_bound():
    session = new_session()
    assert session.state is State.CLOSED
    data = session.send(BindTransceiver(sequence=session.next_sequence(), system_id="us",
                                        password="pw"), now=0.0, token="bind")
    [bind] = pdus(data)
    assert isinstance(bind, BindTransceiver) and bind.system_id == "us" and bind.sequence == 1
    assert session.state is State.BINDING
    [answered] = events(session, encode(BindTransceiverResp(sequence=1, system_id="smsc")))
    assert isinstance(answered, Answered)
    assert answered.request.token == "bind" and answered.request.name == "bind_transceiver"
    assert session.state is State.BOUND
    assert session.outstanding == []


@pytest.mark.parametrize("answer", [
    BindTransceiverResp(sequence=1, status=CommandStatus.ESME_RINVPASWD),
    GenericNack(sequence=1, status=CommandStatus.ESME_RINVCMDID),
])
def test_a_refused_bind_leaves_the_session_closed(answer):
    session = new_session()
    session.send(BindTransceiver(sequence=session.next_sequence()), now=0.0)
    [answered] = events(session, encode(answer))
    assert isinstance(answered, Answered) and answered.pdu == answer
    assert session.state is State.CLOSED


def test_requests_the_state_forbids_are_refused_and_change_nothing():
    session = new_session()
    for pdu in (SubmitSm(sequence=1), Unbind(sequence=1), EnquireLink(sequence=1)):
        with pytest.raises(LocalProtocolError, match="cannot be sent while closed"):
            session.send(pdu, now=0.0)
    assert session.state is State.CLOSED and session.outstanding == []
    session.send(BindTransceiver(sequence=1), now=0.0)
    with pytest.raises(LocalProtocolError, match="bind_transmitter cannot be sent while binding"):
        session.send(BindTransmitter(sequence=2), now=0.0)
    with pytest.raises(LocalProtocolError, match="submit_sm cannot be sent while binding"):
        session.send(SubmitSm(sequence=2), now=0.0)
    with pytest.raises(LocalProtocolError, match="an ESME does not send deliver_sm"):
        session.send(DeliverSm(sequence=2), now=0.0)
    assert [r.sequence for r in session.outstanding] == [1]
    assert session.state is State.BINDING


def test_the_window_bounds_submits_in_flight():
    session = bound(window=2)
    first = submit(session, token="a")
    submit(session, token="b")
    assert session.in_flight == 2
    with pytest.raises(LocalProtocolError, match=r"the window is full \(2 requests in flight\)"):
        submit(session)
    assert session.in_flight == 2 and len(session.outstanding) == 2
    # enquire_link takes no window slot
    session.send(EnquireLink(sequence=session.next_sequence()), now=1.0)
    [answered] = events(session, encode(SubmitSmResp(sequence=first, message_id="m1")))
    assert isinstance(answered, Answered) and answered.request.token == "a"
    assert answered.pdu.message_id == "m1"  # type: ignore[attr-defined]
    assert session.in_flight == 1
    submit(session)  # the slot is free again
    assert session.in_flight == 2


def test_a_generic_nack_answers_a_submit_and_frees_its_slot():
    session = bound(window=1)
    sequence = submit(session)
    [answered] = events(session, encode(GenericNack(sequence=sequence,
                                                    status=CommandStatus.ESME_RINVCMDLEN)))
    assert isinstance(answered, Answered) and isinstance(answered.pdu, GenericNack)
    assert session.in_flight == 0


def test_late_and_unknown_responses_are_stray():
    session = bound()
    late = submit(session, now=1.0)
    [expired] = session.expire(1.0 + TIMEOUT)
    assert expired.sequence == late and session.in_flight == 0
    found = events(session, encode(SubmitSmResp(sequence=late, message_id="late"))
                   + encode(SubmitSmResp(sequence=4242)) + encode(EnquireLinkResp(sequence=7)))
    assert [type(e) for e in found] == [Stray, Stray, Stray]
    assert session.state is State.BOUND and session.data_to_send() == b""


def test_a_response_of_the_wrong_kind_is_a_remote_protocol_error():
    session = bound()
    assert len(events(session, encode(DeliverSm(sequence=70, short_message=b"before")))) == 1
    sequence = submit(session)
    session.receive_data(encode(UnbindResp(sequence=sequence)), 2.0)
    with pytest.raises(RemoteProtocolError, match=r"answered submit_sm \(sequence 2\) with a "
                                                  r"unbind_resp"):
        session.next_event()
    with pytest.raises(RemoteProtocolError):  # and on every later call
        session.next_event()
    with pytest.raises(LocalProtocolError, match="no request can be sent after a protocol "
                                                 "error"):
        submit(session)
    # a message received before it may still be answered (once committed) as the link drops
    assert pdus(session.send(DeliverSmResp(sequence=70), now=3.0)) == [
        DeliverSmResp(sequence=70)]


def test_enquire_link_from_the_smsc_is_answered_in_any_state():
    for session in (new_session(), bound()):
        state = session.state
        [event] = events(session, encode(EnquireLink(sequence=77)))
        assert isinstance(event, Replied) and event.reply == EnquireLinkResp(sequence=77)
        assert pdus(session.data_to_send()) == [EnquireLinkResp(sequence=77)]
        assert session.data_to_send() == b""  # taken once
        assert session.state is state


def test_enquire_link_of_ours_is_due_only_on_an_idle_bound_link():
    session = new_session()
    assert not session.enquire_link_due(INTERVAL * 2)  # not bound
    session = bound()  # last received at 1.0 (the bind_resp)
    assert session.deadline() == 1.0 + INTERVAL
    assert not session.enquire_link_due(INTERVAL)
    session.receive_data(encode(EnquireLinkResp(sequence=999)), 30.0)  # traffic proves the link
    events(session)
    assert not session.enquire_link_due(30.0 + INTERVAL - 0.1)
    assert session.enquire_link_due(30.0 + INTERVAL)
    sequence = session.next_sequence()
    data = session.send(EnquireLink(sequence=sequence), now=30.0 + INTERVAL)
    assert pdus(data) == [EnquireLink(sequence=sequence)]
    assert not session.enquire_link_due(30.0 + INTERVAL * 3)  # one in flight
    assert session.deadline() == 30.0 + INTERVAL + TIMEOUT
    [answered] = events(session, encode(EnquireLinkResp(sequence=sequence)), now=95.0)
    assert isinstance(answered, Answered)
    assert session.enquire_link_due(95.0 + INTERVAL)


def test_timeouts_expire_the_oldest_requests_first():
    session = bound(window=5)
    assert session.deadline() == 1.0 + INTERVAL
    a = submit(session, now=10.0)
    b = submit(session, now=20.0)
    assert session.deadline() == 10.0 + TIMEOUT
    assert session.expire(10.0 + TIMEOUT - 0.5) == []
    assert [r.sequence for r in session.expire(10.0 + TIMEOUT)] == [a]
    assert [r.sequence for r in session.outstanding] == [b]
    assert session.in_flight == 1
    assert [r.sequence for r in session.expire(1000.0)] == [b]
    assert session.in_flight == 0


def test_a_bind_without_an_answer_expires_and_leaves_the_session_closed():
    session = new_session()
    session.send(BindTransceiver(sequence=session.next_sequence()), now=0.0)
    assert session.deadline() == TIMEOUT
    [request] = session.expire(TIMEOUT)
    assert request.command_id == CommandId.BIND_TRANSCEIVER
    assert session.state is State.CLOSED


def test_unbind_of_ours():
    session = bound()
    pending = submit(session)
    sequence = session.next_sequence()
    session.send(Unbind(sequence=sequence), now=2.0)
    assert session.state is State.UNBINDING
    with pytest.raises(LocalProtocolError, match="submit_sm cannot be sent while unbinding"):
        submit(session)
    # answers to submits still in flight and messages still arrive while unbinding
    found = events(session, encode(SubmitSmResp(sequence=pending, message_id="x"))
                   + encode(DeliverSm(sequence=50, short_message=b"late"))
                   + encode(UnbindResp(sequence=sequence)))
    assert [type(e) for e in found] == [Answered, Received, Answered]
    assert session.state is State.CLOSED
    assert pdus(session.send(DeliverSmResp(sequence=50), now=3.0)) == [
        DeliverSmResp(sequence=50)]


def test_unbind_from_the_smsc_is_answered_and_closes_the_session():
    session = bound()
    pending = submit(session)
    found = events(session, encode(Unbind(sequence=31)))
    assert [type(e) for e in found] == [Replied, Closed]
    assert found[1] == Closed("the SMSC unbound")
    assert pdus(session.data_to_send()) == [UnbindResp(sequence=31)]
    assert session.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        submit(session)
    assert [r.sequence for r in session.close()] == [pending]


def test_a_message_is_left_to_the_driver_and_answered_once():
    session = bound()
    deliver = DeliverSm(sequence=40, source_addr="15550002", short_message=b"hello")
    [received] = events(session, encode(deliver))
    assert received == Received(deliver)
    assert session.data_to_send() == b""  # answered only once committed
    with pytest.raises(LocalProtocolError, match="data_sm_resp cannot answer the deliver_sm"):
        session.send(DataSmResp(sequence=40), now=2.0)
    assert pdus(session.send(DeliverSmResp(sequence=40), now=2.0)) == [
        DeliverSmResp(sequence=40)]
    with pytest.raises(LocalProtocolError, match="answers sequence 40"):
        session.send(DeliverSmResp(sequence=40), now=2.0)


def test_a_request_sent_twice_with_one_sequence_is_answered_twice():
    session = bound()
    data = encode(DataSm(sequence=41, message_payload=b"x"))
    assert len(events(session, data + data)) == 2
    session.send(DataSmResp(sequence=41), now=2.0)
    session.send(GenericNack(sequence=41, status=CommandStatus.ESME_RSYSERR), now=2.0)
    with pytest.raises(LocalProtocolError):
        session.send(DataSmResp(sequence=41), now=2.0)


@pytest.mark.parametrize("state", ["closed", "binding"])
def test_a_message_while_not_bound_is_refused_with_invbndsts(state):
    session = new_session()
    if state == "binding":
        session.send(BindTransceiver(sequence=session.next_sequence()), now=0.0)
    [event] = events(session, encode(DeliverSm(sequence=5, short_message=b"early")))
    assert isinstance(event, Replied)
    assert pdus(session.data_to_send()) == [
        DeliverSmResp(sequence=5, status=CommandStatus.ESME_RINVBNDSTS)]


def test_requests_an_esme_does_not_take_get_a_generic_nack():
    session = bound()
    found = events(session, encode(SubmitSm(sequence=8)) + encode(BindTransceiver(sequence=9)))
    assert [type(e) for e in found] == [Replied, Replied]
    assert pdus(session.data_to_send()) == [
        GenericNack(sequence=8, status=CommandStatus.ESME_RINVCMDID),
        GenericNack(sequence=9, status=CommandStatus.ESME_RINVCMDID)]
    assert session.state is State.BOUND


def test_garbage_that_can_be_reframed_is_answered_and_the_session_lives():
    session = bound()
    unknown = struct.pack(">IIII", 16, 0x00000099, 0, 60)
    bad_body = struct.pack(">IIII", 20, CommandId.DELIVER_SM, 0, 61) + b"\0\1\1\0"
    found = events(session, unknown + bad_body)
    assert [type(e) for e in found] == [Malformed, Malformed]
    answers = pdus(session.data_to_send())
    assert answers[0] == GenericNack(sequence=60, status=CommandStatus.ESME_RINVCMDID)
    assert isinstance(answers[1], DeliverSmResp) and answers[1].sequence == 61
    assert answers[1].status != 0
    assert session.state is State.BOUND
    submit(session)


def test_an_unreadable_answer_to_a_submit_settles_it_with_its_status():
    session = bound()
    sequence = submit(session)
    frame = struct.pack(">IIII", 17, CommandId.SUBMIT_SM_RESP,
                        CommandStatus.ESME_RTHROTTLED, sequence) + b"x"  # id without its NUL
    found = events(session, frame)
    assert [type(e) for e in found] == [Malformed, Answered]
    assert found[0].reply is None  # type: ignore[attr-defined]
    assert found[1].pdu == SubmitSmResp(sequence=sequence,  # type: ignore[attr-defined]
                                        status=CommandStatus.ESME_RTHROTTLED)
    assert session.in_flight == 0


def test_a_frame_that_cannot_be_reframed_is_nacked_then_a_remote_protocol_error():
    session = bound()
    session.receive_data(struct.pack(">IIII", 8, CommandId.DELIVER_SM, 0, 62), 2.0)
    event = session.next_event()
    assert isinstance(event, Malformed) and event.pdu.fatal
    assert pdus(session.data_to_send()) == [
        GenericNack(sequence=62, status=CommandStatus.ESME_RINVCMDLEN)]
    with pytest.raises(RemoteProtocolError, match="cannot be framed"):
        session.next_event()
    session.receive_data(encode(EnquireLink(sequence=1)), 3.0)  # nothing more is read
    with pytest.raises(RemoteProtocolError):
        session.next_event()


def test_bytes_arriving_one_at_a_time_give_the_same_events():
    data = (encode(EnquireLink(sequence=3)) + encode(DeliverSm(sequence=4, short_message=b"a"))
            + encode(SubmitSmResp(sequence=2, message_id="z")))
    whole, trickled = bound(), bound()
    submit(whole)
    submit(trickled)
    expected = events(whole, data)
    found = []
    for i in range(len(data)):
        found += events(trickled, data[i:i + 1])
    assert [type(e) for e in found] == [type(e) for e in expected] == [Replied, Received,
                                                                       Answered]
    assert trickled.data_to_send() == whole.data_to_send()


def test_the_end_of_the_connection():
    session = bound()
    pending = submit(session, token="t")
    session.receive_data(b"", 2.0)
    assert events(session) == [Closed("the SMSC closed the connection")]
    assert session.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="the connection is closed"):
        session.send(EnquireLink(sequence=5), now=2.0)
    [request] = session.close()
    assert (request.sequence, request.token) == (pending, "t")
    assert session.outstanding == [] and session.in_flight == 0


def test_sequence_numbers_wrap_and_skip_those_in_flight():
    session = bound()
    session._sequence = MAX_SEQUENCE - 1
    assert submit(session) == MAX_SEQUENCE
    assert session.next_sequence() == 1
    session._sequence = 0
    # 1 was the bind (answered); 2 is free: a request still waiting keeps its number
    taken = submit(session)
    session._sequence = taken - 1
    assert session.next_sequence() == taken + 1
    with pytest.raises(LocalProtocolError, match=f"sequence {taken} is still waiting"):
        session.send(EnquireLink(sequence=taken), now=1.0)
    for sequence in (0, MAX_SEQUENCE + 1):
        with pytest.raises(LocalProtocolError, match="outside"):
            session.send(EnquireLink(sequence=sequence), now=1.0)


def test_unencodable_requests_raise_value_error_and_change_nothing():
    session = bound()
    with pytest.raises(ValueError):
        session.send(SubmitSm(sequence=session.next_sequence(), destination_addr="1" * 30),
                     now=1.0)
    assert session.in_flight == 0 and session.outstanding == []


def test_every_pdu_read_and_written_is_counted():
    session = bound()
    sequence = submit(session)
    events(session, encode(SubmitSmResp(sequence=sequence)) + encode(EnquireLink(sequence=9)))
    assert dict(session.counts) == {
        ("out", CommandId.BIND_TRANSCEIVER, 0): 1,
        ("in", CommandId.BIND_TRANSCEIVER_RESP, 0): 1,
        ("out", CommandId.SUBMIT_SM, 0): 1,
        ("in", CommandId.SUBMIT_SM_RESP, 0): 1,
        ("in", CommandId.ENQUIRE_LINK, 0): 1,
        ("out", CommandId.ENQUIRE_LINK_RESP, 0): 1,
    }


def test_the_session_does_no_io():
    tree = ast.parse(Path(session_module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    assert not imported & {"trio", "socket", "time", "asyncio", "random", "logging"}


# --- random PDU sequences: nothing but protocol errors, and the books always balance

_sequences = st.integers(min_value=0, max_value=12)
_statuses = st.sampled_from([0, 0, 0, CommandStatus.ESME_RTHROTTLED,
                             CommandStatus.ESME_RINVPASWD, 0xDEADBEEF])
_received = st.one_of(
    st.builds(BindTransceiverResp, sequence=_sequences, status=_statuses),
    st.builds(SubmitSmResp, sequence=_sequences, status=_statuses, message_id=st.text(
        "0123456789abcdef", max_size=8)),
    st.builds(GenericNack, sequence=_sequences, status=_statuses),
    st.builds(EnquireLink, sequence=_sequences),
    st.builds(EnquireLinkResp, sequence=_sequences),
    st.builds(Unbind, sequence=_sequences),
    st.builds(UnbindResp, sequence=_sequences),
    st.builds(DeliverSm, sequence=_sequences, short_message=st.binary(max_size=20)),
    st.builds(DataSm, sequence=_sequences, message_payload=st.binary(max_size=20)),
    st.builds(SubmitSm, sequence=_sequences),
    st.builds(DeliverSmResp, sequence=_sequences),
).map(encode)
_garbage = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda c, s, q, body: struct.pack(">IIII", 16 + len(body), c, s, q) + body,
              st.sampled_from([0x99, CommandId.DELIVER_SM, CommandId.SUBMIT_SM_RESP,
                               CommandId.BIND_TRANSCEIVER_RESP, CommandId.GENERIC_NACK]),
              _statuses, _sequences, st.binary(max_size=12)),
)
_actions = st.lists(st.one_of(
    st.tuples(st.just("receive"), st.lists(_received, min_size=1, max_size=4),
              st.integers(min_value=1, max_value=7)),
    st.tuples(st.just("garbage"), _garbage),
    st.tuples(st.just("send"), st.sampled_from(["bind", "submit", "enquire", "unbind"])),
    st.tuples(st.just("answer"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=50)),
    st.tuples(st.just("eof"),),
), max_size=40)


def _drive(session: Session, action: tuple, now: float, received: list[Pdu]) -> float:
    kind = action[0]
    if kind == "receive":
        data, step = b"".join(action[1]), action[2]
        for i in range(0, len(data), step):
            session.receive_data(data[i:i + step], now)
    elif kind == "garbage":
        session.receive_data(action[1], now)
    elif kind == "eof":
        session.receive_data(b"", now)
    elif kind == "wait":
        now += action[1]
        session.expire(now)
    elif kind == "send":
        build = {"bind": BindTransceiver, "submit": SubmitSm, "enquire": EnquireLink,
                 "unbind": Unbind}[action[1]]
        session.send(build(sequence=session.next_sequence()), now=now)
    elif kind == "answer" and received:
        pdu = received.pop(action[1] % len(received))
        answer = DeliverSmResp if isinstance(pdu, DeliverSm) else DataSmResp
        session.send(answer(sequence=pdu.sequence), now=now)
    while (event := session.next_event()) is not None:
        if isinstance(event, Received):
            received.append(event.pdu)
    session.data_to_send()
    return now


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=_actions, window=st.integers(min_value=1, max_value=3))
def test_random_pdu_sequences_raise_nothing_but_protocol_errors(actions, window):
    session = new_session(window)
    now = 0.0
    received: list[Pdu] = []
    for action in actions:
        before = (session.state, session.in_flight, [r.sequence for r in session.outstanding])
        try:
            now = _drive(session, action, now, received)
        except LocalProtocolError:
            if action[0] in ("send", "answer"):  # a refused send changes nothing
                assert (session.state, session.in_flight,
                        [r.sequence for r in session.outstanding]) == before
        except GatewayProtocolError:
            pass
        windowed = [r for r in session.outstanding
                    if r.command_id in (CommandId.SUBMIT_SM, CommandId.DATA_SM)]
        assert 0 <= session.in_flight == len(windowed) <= window
        assert isinstance(session.state, State)
        assert session.deadline() >= 0
