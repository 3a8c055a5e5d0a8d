"""The sans-IO SMPP codec: round trips, a cross-check against smpplib, malformed input, receipts."""

from __future__ import annotations

import struct

import msgspec
import pytest
import smpplib.gsm
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from intercept.gateways.smpp import (
    PDU_CLASSES,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
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
    MalformedPdu,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
    decode,
    encode,
    encode_many,
    is_receipt,
    next_sequence,
    parse_receipt_text,
    receipt_from_pdu,
    response_for,
)

VENDOR_TLV = Tlv(0x1400, b"\x01\x02vendor")  # vendor-specific range; unknown to both codecs
NETWORK_ERROR = Tlv(0x0423, b"\x03\x00\x0b")

SAMPLES: list[Pdu] = [
    GenericNack(sequence=11, status=CommandStatus.ESME_RINVCMDID),
    EnquireLink(sequence=12),
    EnquireLinkResp(sequence=12),
    Unbind(sequence=13),
    UnbindResp(sequence=13),
    BindTransceiver(sequence=1, system_id="intercept", password="secret", system_type="SMS",
                    addr_ton=1, addr_npi=1, address_range="^1555"),
    BindTransmitter(sequence=2, system_id="tx", password="pw"),
    BindReceiver(sequence=3, system_id="rx", password="pw", system_type="VMA"),
    BindTransceiverResp(sequence=1, system_id="SMSC", sc_interface_version=0x34),
    BindTransmitterResp(sequence=2, system_id="SMSC"),
    BindReceiverResp(sequence=3, status=CommandStatus.ESME_RBINDFAIL),
    SubmitSm(sequence=100, service_type="CMT", source_addr_ton=1, source_addr_npi=1,
             source_addr="15550001", dest_addr_ton=1, dest_addr_npi=1,
             destination_addr="15550002", esm_class=0x40, protocol_id=0, priority_flag=1,
             schedule_delivery_time="240101120000000+", validity_period="000001000000000R",
             registered_delivery=1, replace_if_present_flag=0, data_coding=8,
             sm_default_msg_id=0, short_message=b"\x05\x00\x03\x2a\x02\x01\x00h\x00i",
             sar_msg_ref_num=513, sar_total_segments=2, sar_segment_seqnum=1),
    SubmitSm(sequence=101, source_addr="15550001", destination_addr="15550002",
             message_payload=b"a long text " * 30),
    SubmitSmResp(sequence=100, message_id="5f3c9a0e-0001"),
    SubmitSmResp(sequence=101, status=CommandStatus.ESME_RTHROTTLED),
    DeliverSm(sequence=200, source_addr="15550002", destination_addr="15550001",
              esm_class=0x04, data_coding=0,
              short_message=b"id:5f3c9a0e-0001 sub:001 dlvrd:001 submit date:2401011200 "
                            b"done date:2401011201 stat:DELIVRD err:000 text:hi",
              receipted_message_id="5f3c9a0e-0001", message_state=2),
    DeliverSm(sequence=201, source_addr="15550002", destination_addr="15550001",
              message_payload=b"payload text", sar_msg_ref_num=7, sar_total_segments=3,
              sar_segment_seqnum=3),
    DeliverSmResp(sequence=200),
    DataSm(sequence=300, source_addr="15550002", destination_addr="15550001",
           registered_delivery=1, data_coding=3, message_payload=b"caf\xe9"),
    DataSmResp(sequence=300, message_id="d-1"),
]


def _with_vendor_tlv(pdu: Pdu) -> Pdu:
    """`pdu` with a vendor TLV, plus network_error_code where smpplib knows that TLV."""
    if isinstance(pdu, DeliverSm | DataSm):
        return msgspec.structs.replace(pdu, tlvs=(VENDOR_TLV, NETWORK_ERROR))
    if "tlvs" in pdu.__struct_fields__:
        return msgspec.structs.replace(pdu, tlvs=(VENDOR_TLV,))
    return pdu


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: p.command_name)
def test_round_trip(pdu):
    for candidate in (pdu, _with_vendor_tlv(pdu)):
        data = encode(candidate)
        assert struct.unpack(">I", data[:4])[0] == len(data)
        assert decode(data) == candidate
        assert encode(decode(data)) == data


def test_every_supported_command_has_a_sample():
    assert {type(p) for p in SAMPLES} == set(PDU_CLASSES.values())


def test_decoder_takes_a_stream_in_any_chunking():
    stream = encode_many(SAMPLES)
    whole = Decoder()
    whole.feed(stream)
    assert list(whole) == SAMPLES
    trickle = Decoder()
    got = []
    for i in range(len(stream)):
        trickle.feed(stream[i:i + 1])
        got.extend(trickle)
    assert got == SAMPLES
    assert trickle.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40))
def test_decoder_random_chunking(cuts):
    stream = encode_many(SAMPLES)
    decoder = Decoder()
    got = []
    pos = 0
    for size in cuts:
        decoder.feed(memoryview(stream)[pos:pos + size])
        pos += size
        got.extend(decoder)
    decoder.feed(stream[pos:])
    got.extend(decoder)
    assert got == SAMPLES


# ---------------------------------------------------------------------------------------------
# Cross-check with smpplib, an implementation we did not write.

def lib_make(name: str, sequence: int, **fields) -> smpplib.command.Command:
    pdu = smpplib.smpp.make_pdu(name, client=None, sequence=sequence, **fields)
    pdu.sequence = sequence  # smpplib's constructor ignores sequence= on its own
    return pdu


def lib_parse(data: bytes) -> smpplib.command.Command:
    return smpplib.smpp.parse_pdu(data, client=None, sequence=0, allow_unknown_opt_params=True)


def _lib_fields(pdu: Pdu) -> dict:
    """Our PDU's fields as smpplib's make_pdu wants them (C-strings as str, no empties)."""
    fields = {}
    for name in pdu.__struct_fields__:
        value = getattr(pdu, name)
        if name in ("sequence", "tlvs") or value is None:
            continue
        fields[name] = value
    return fields


def _assert_same(ours: Pdu, lib) -> None:
    assert lib.command == ours.command_name
    assert lib.sequence == ours.sequence
    assert lib.status == ours.status
    for name in ours.__struct_fields__:
        if name in ("sequence", "status", "tlvs"):
            continue
        mine = getattr(ours, name)
        theirs = getattr(lib, name, None)
        if isinstance(mine, str):  # smpplib gives C-strings as bytes, empty ones as b"" or None
            assert (theirs or b"") == mine.encode("latin-1"), name
        elif name == "short_message":
            assert (theirs or b"") == mine, name
        else:
            assert theirs == mine, name


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: p.command_name)
def test_ours_decoded_by_smpplib(pdu):
    data = encode(_with_vendor_tlv(pdu))
    lib = lib_parse(data)
    _assert_same(pdu, lib)
    if isinstance(pdu, DeliverSm | DataSm):
        assert lib.network_error_code == NETWORK_ERROR.value


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: p.command_name)
def test_smpplib_decoded_by_ours(pdu):
    lib = lib_make(pdu.command_name, pdu.sequence, **_lib_fields(pdu))
    got = decode(lib.generate())
    assert got == pdu


def test_smpplib_frame_with_unknown_tlv_is_preserved():
    lib = lib_make("deliver_sm", 5, source_addr="1", destination_addr="2", short_message=b"x")
    raw = lib.generate()
    extra = struct.pack(">HH", VENDOR_TLV.tag, len(VENDOR_TLV.value)) + VENDOR_TLV.value
    frame = struct.pack(">I", len(raw) + len(extra)) + raw[4:] + extra
    pdu = decode(frame)
    assert isinstance(pdu, DeliverSm)
    assert pdu.tlvs == (VENDOR_TLV,)
    assert encode(pdu) == frame


def test_smpplib_gsm_and_ucs2_messages():
    for text, coding, data in (("Hello @ £5 {ok}", 0, None), ("Привет 👋", 8, None)):
        parts, encoding, esm = smpplib.gsm.make_parts(text)
        assert encoding == coding
        data = parts[0]
        lib = lib_make("deliver_sm", 9, source_addr="1", destination_addr="2",
                       data_coding=encoding, esm_class=esm, short_message=data)
        pdu = decode(lib.generate())
        assert isinstance(pdu, DeliverSm) and pdu.short_message == data


# ---------------------------------------------------------------------------------------------
# Property: random PDUs survive encode -> decode (ours) and encode -> smpplib.

cstr = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=5)
addr = st.text(alphabet="0123456789+", max_size=20)
byte = st.integers(0, 255)
tlvs = st.lists(st.builds(Tlv, st.sampled_from([0x0005, 0x1400, 0x1401, 0x3FFF]),
                          st.binary(max_size=20)), max_size=3).map(tuple)
opt_byte = st.none() | byte


@st.composite
def short_messages(draw, cls):
    payload = draw(st.none() | st.binary(max_size=300))
    return cls(
        sequence=draw(st.integers(1, 0x7FFFFFFF)), status=draw(st.sampled_from([0, 0x58])),
        service_type=draw(cstr), source_addr_ton=draw(byte), source_addr_npi=draw(byte),
        source_addr=draw(addr), dest_addr_ton=draw(byte), dest_addr_npi=draw(byte),
        destination_addr=draw(addr), esm_class=draw(byte), protocol_id=draw(byte),
        priority_flag=draw(byte),
        schedule_delivery_time=draw(st.sampled_from(["", "240101120000000+"])),
        validity_period=draw(st.sampled_from(["", "000001000000000R"])),
        registered_delivery=draw(byte), replace_if_present_flag=draw(byte),
        data_coding=draw(byte), sm_default_msg_id=draw(byte),
        short_message=b"" if payload is not None else draw(st.binary(max_size=254)),
        message_payload=payload,
        receipted_message_id=draw(st.none() | st.text(alphabet="0123456789abcdef", max_size=64)),
        message_state=draw(opt_byte), sar_msg_ref_num=draw(st.none() | st.integers(0, 0xFFFF)),
        sar_total_segments=draw(opt_byte), sar_segment_seqnum=draw(opt_byte), tlvs=draw(tlvs),
    )


any_pdu = st.one_of(
    short_messages(SubmitSm), short_messages(DeliverSm),
    st.builds(SubmitSmResp, sequence=st.integers(0, 0xFFFFFFFF),
              status=st.integers(0, 0xFFFFFFFF), message_id=cstr, tlvs=tlvs),
    st.builds(BindTransceiver, sequence=st.integers(1, 99), system_id=cstr, password=cstr,
              system_type=cstr, interface_version=byte, addr_ton=byte, addr_npi=byte,
              address_range=cstr),
    st.builds(BindTransceiverResp, sequence=st.integers(1, 99), system_id=cstr,
              sc_interface_version=opt_byte, tlvs=tlvs),
    st.builds(GenericNack, sequence=st.integers(0, 99), status=st.integers(0, 0xFFFFFFFF)),
    st.builds(EnquireLink, sequence=st.integers(1, 99)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_pdu, min_size=1, max_size=5))
def test_random_pdus_round_trip(pdus):
    decoder = Decoder()
    decoder.feed(encode_many(pdus))
    assert list(decoder) == pdus


@settings(max_examples=150, deadline=None)
@given(short_messages(DeliverSm))
def test_random_deliver_sm_read_by_smpplib(pdu):
    # smpplib refuses a TLV it knows but does not expect in deliver_sm, so keep vendor tags.
    pdu = msgspec.structs.replace(pdu, tlvs=tuple(t for t in pdu.tlvs if t.tag >= 0x1400))
    lib = lib_parse(encode(pdu))
    assert lib.sequence == pdu.sequence
    assert lib.source_addr == pdu.source_addr.encode()
    assert lib.destination_addr == pdu.destination_addr.encode()
    assert (lib.short_message or b"") == pdu.short_message
    assert lib.message_payload == pdu.message_payload
    assert lib.esm_class == pdu.esm_class and lib.data_coding == pdu.data_coding
    assert lib.message_state == pdu.message_state
    assert lib.sar_msg_ref_num == pdu.sar_msg_ref_num
    rid = lib.receipted_message_id
    assert (rid.decode() if rid is not None else None) == pdu.receipted_message_id


# ---------------------------------------------------------------------------------------------
# Malformed input: events, never exceptions.

GOOD = encode(EnquireLink(sequence=77))


def frame(command_id: int, body: bytes, sequence: int = 5, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def events(data: bytes, **kw) -> list:
    decoder = Decoder(**kw)
    decoder.feed(data)
    return list(decoder)


def test_unknown_command_id_is_skipped_and_decoding_goes_on():
    got = events(frame(0x00000777, b"whatever") + GOOD)
    bad, good = got
    assert isinstance(bad, MalformedPdu) and not bad.fatal
    assert (bad.command_id, bad.sequence, bad.status) == (0x777, 5, CommandStatus.ESME_RINVCMDID)
    assert "0x00000777" in bad.reason
    assert good == EnquireLink(sequence=77)
    assert response_for(bad) == GenericNack(sequence=5, status=CommandStatus.ESME_RINVCMDID)


def test_unsupported_but_real_command_is_nacked():
    bad = events(frame(CommandId.QUERY_SM, b"1\x00\x00\x00\x00"))[0]
    assert bad.status == CommandStatus.ESME_RINVCMDID and "query_sm" in bad.reason


@pytest.mark.parametrize("length", [0, 4, 15])
def test_length_below_header_is_fatal(length):
    decoder = Decoder()
    decoder.feed(struct.pack(">IIII", length, 4, 0, 9) + GOOD)
    bad = decoder.next_pdu()
    assert isinstance(bad, MalformedPdu) and bad.fatal
    assert (bad.command_id, bad.sequence, bad.status) == (4, 9, CommandStatus.ESME_RINVCMDLEN)
    assert decoder.broken and decoder.next_pdu() is None
    decoder.feed(GOOD)
    assert decoder.next_pdu() is None
    assert response_for(bad) == GenericNack(sequence=9, status=CommandStatus.ESME_RINVCMDLEN)


def test_huge_length_is_fatal_without_waiting_for_the_body():
    decoder = Decoder(max_length=1024)
    decoder.feed(struct.pack(">IIII", 1025, 5, 0, 3))
    bad = decoder.next_pdu()
    assert bad.fatal and bad.status == CommandStatus.ESME_RINVCMDLEN and bad.sequence == 3
    assert "1025" in bad.reason
    assert events(struct.pack(">I", 0xFFFFFFFF))[0].command_id is None


def test_a_length_just_under_the_limit_waits_for_its_body():
    decoder = Decoder(max_length=64)
    decoder.feed(struct.pack(">IIII", 64, CommandId.ENQUIRE_LINK, 0, 1))
    assert decoder.next_pdu() is None and decoder.buffered == 16
    decoder.feed(bytes(48))
    assert decoder.next_pdu() == EnquireLink(sequence=1)


def test_truncated_body_is_reported_and_the_next_pdu_decodes():
    body = encode(SAMPLES[11])[16:40]  # submit_sm cut inside its mandatory fields
    bad, good = events(frame(CommandId.SUBMIT_SM, body) + GOOD)
    assert bad.status == CommandStatus.ESME_RINVCMDLEN and not bad.fatal
    assert bad.command_id == CommandId.SUBMIT_SM and bad.sequence == 5
    assert good == EnquireLink(sequence=77)
    assert response_for(bad) == SubmitSmResp(sequence=5, status=CommandStatus.ESME_RINVCMDLEN)


def test_missing_nul_is_reported():
    bad, good = events(frame(CommandId.DELIVER_SM, b"CMT\x00\x01\x0115550001") + GOOD)
    assert bad.status == CommandStatus.ESME_RINVCMDLEN
    assert "source_addr" in bad.reason and "NUL" in bad.reason
    assert good == EnquireLink(sequence=77)
    resp = frame(CommandId.SUBMIT_SM_RESP, b"abc", status=0x58)
    bad = events(resp)[0]
    assert bad.command_status == 0x58 and "message_id" in bad.reason
    assert response_for(bad) is None  # a malformed response gets no answer


def test_sm_length_past_the_body():
    pdu = encode(DeliverSm(sequence=1, short_message=b"hello"))
    body = bytearray(pdu[16:])
    body[body.index(b"hello") - 1] = 200
    bad = events(frame(CommandId.DELIVER_SM, bytes(body)))[0]
    assert bad.status == CommandStatus.ESME_RINVMSGLEN and "200" in bad.reason


def test_broken_tlv_stream_and_bad_tlv_width():
    base = encode(DeliverSm(sequence=1, short_message=b"hi"))[16:]
    bad = events(frame(CommandId.DELIVER_SM, base + b"\x04\x24\x00\x09abc"))[0]
    assert bad.status == CommandStatus.ESME_RINVOPTPARSTREAM
    bad = events(frame(CommandId.DELIVER_SM, base + b"\x04"))[0]
    assert bad.status == CommandStatus.ESME_RINVOPTPARSTREAM
    bad = events(frame(CommandId.DELIVER_SM, base + b"\x04\x27\x00\x00"))[0]
    assert bad.status == CommandStatus.ESME_RINVPARLEN and "message_state" in bad.reason
    two = events(frame(CommandId.DELIVER_SM, base + b"\x04\x27\x00\x02\x00\x02"))[0]
    assert two.message_state == 2  # integer TLVs of 1-4 octets are accepted


def test_error_responses_without_body_and_stray_bytes_on_bodyless_pdus():
    assert events(frame(CommandId.SUBMIT_SM_RESP, b"", status=0x14)) == [
        SubmitSmResp(sequence=5, status=CommandStatus.ESME_RMSGQFUL)]
    assert events(frame(CommandId.BIND_TRANSCEIVER_RESP, b"", status=0x0E)) == [
        BindTransceiverResp(sequence=5, status=CommandStatus.ESME_RINVPASWD)]
    assert events(frame(CommandId.ENQUIRE_LINK, b"junk")) == [EnquireLink(sequence=5)]


def test_decode_single_frame_helper():
    assert decode(GOOD[:10]).status == CommandStatus.ESME_RINVCMDLEN
    assert "beyond" in decode(GOOD + b"x").reason


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_garbage_never_raises(data, cut):
    decoder = Decoder(max_length=4096)
    decoder.feed(data[:cut])
    list(decoder)
    decoder.feed(data[cut:])
    for event in decoder:
        assert isinstance(event, Pdu | MalformedPdu)
        if isinstance(event, MalformedPdu):
            response_for(event)


@settings(max_examples=300, deadline=None)
@given(short_messages(DeliverSm), st.data())
def test_truncating_a_valid_frame_never_raises(pdu, data):
    raw = encode(pdu)
    cut = data.draw(st.integers(16, len(raw)))
    event = decode(struct.pack(">I", cut) + raw[4:cut])
    assert isinstance(event, DeliverSm | MalformedPdu)


@settings(max_examples=300, deadline=None)
@given(any_pdu, st.data())
def test_corrupting_a_valid_body_never_raises(pdu, data):
    raw = bytearray(encode(pdu))
    if len(raw) > 16:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(16, len(raw) - 1))] = data.draw(st.integers(0, 255))
    decoder = Decoder()
    decoder.feed(bytes(raw) + GOOD)
    got = list(decoder)
    assert isinstance(got[0], Pdu | MalformedPdu) and got[-1] == EnquireLink(sequence=77)


# ---------------------------------------------------------------------------------------------
# Encoding errors are sentences naming the field.

@pytest.mark.parametrize(("pdu", "words"), [
    (SubmitSm(sequence=1, source_addr="1" * 21), "source_addr"),
    (SubmitSm(sequence=1, destination_addr="12\x003"), "NUL"),
    (SubmitSm(sequence=1, esm_class=256), "esm_class"),
    (SubmitSm(sequence=1, sar_msg_ref_num=70000), "sar_msg_ref_num"),
    (SubmitSm(sequence=2**32), "sequence"),
    (SubmitSm(sequence=1, short_message=b"x" * 255), "254"),
    (SubmitSm(sequence=1, short_message=b"x", message_payload=b"y"), "both"),
    (SubmitSm(sequence=1, source_addr="Ω"), "Latin-1"),
    (BindTransceiver(sequence=1, password="123456789"), "password"),
])
def test_encode_errors_name_the_field(pdu, words):
    with pytest.raises(ValueError, match=words):
        encode(pdu)


def test_response_for_requests():
    submit = SAMPLES[11]
    assert response_for(submit, message_id="m1") == SubmitSmResp(sequence=100, message_id="m1")
    assert response_for(DeliverSm(sequence=4)) == DeliverSmResp(sequence=4)
    assert response_for(EnquireLink(sequence=8)) == EnquireLinkResp(sequence=8)
    assert response_for(Unbind(sequence=8)) == UnbindResp(sequence=8)
    assert response_for(BindTransceiver(sequence=1), system_id="S") == BindTransceiverResp(
        sequence=1, system_id="S")
    assert response_for(BindReceiver(sequence=1)) == BindReceiverResp(sequence=1)
    assert response_for(BindTransmitter(sequence=1)) == BindTransmitterResp(sequence=1)
    assert response_for(DeliverSm(sequence=4), status=CommandStatus.ESME_RX_T_APPN).status == 0x64
    with pytest.raises(ValueError, match="not a request"):
        response_for(SubmitSmResp(sequence=1))


def test_next_sequence_wraps():
    assert next_sequence(0) == 1
    assert next_sequence(41) == 42
    assert next_sequence(0x7FFFFFFF) == 1


# ---------------------------------------------------------------------------------------------
# Delivery receipts.

def test_receipt_text_form():
    r = parse_receipt_text("id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done "
                           "date:2401011201 stat:DELIVRD err:000 text:Hello stat:junk")
    assert r.message_id == "0123456789" and r.state == "delivered" and r.final
    assert (r.submitted, r.delivered, r.error) == (1, 1, "000")
    assert (r.submit_date, r.done_date) == ("2401011200", "2401011201")
    assert r.text == "Hello stat:junk"


@pytest.mark.parametrize(("text", "state"), [
    ("ID:abc STAT:undeliv ERR:001", "undeliverable"),
    ("id:abc stat:EXPIRED", "expired"),
    ("id:abc stat:DELETED", "deleted"),
    ("id:abc stat:ACCEPTD", "accepted"),
    ("id:abc stat:UNKNOWN", "unknown"),
    ("id:abc stat:REJECTD", "rejected"),
    ("id:abc stat:ENROUTE", "enroute"),
    ("id:abc stat:DELIVERED", "delivered"),
    ("id:abc stat:WHATEVER", "unknown"),
    ("id:abc", "unknown"),
    ("id:abc submit_date:2401011200 stat:delivrd", "delivered"),
])
def test_receipt_text_tolerance(text, state):
    r = parse_receipt_text(text)
    assert r.message_id == "abc" and r.state == state


def test_receipt_without_id_is_none():
    assert parse_receipt_text("stat:DELIVRD err:000") is None
    assert receipt_from_pdu(DeliverSm(sequence=1, esm_class=4, short_message=b"hi")) is None


def test_receipt_from_tlvs_wins_and_text_fills_in():
    pdu = SAMPLES[15]
    assert is_receipt(pdu) and not is_receipt(SAMPLES[16])
    r = receipt_from_pdu(msgspec.structs.replace(pdu, message_state=5, tlvs=(NETWORK_ERROR,)))
    assert r.message_id == "5f3c9a0e-0001" and r.state == "undeliverable"
    assert r.stat == "DELIVRD" and r.network_error_code == b"\x03\x00\x0b"
    tlv_only = DeliverSm(sequence=1, esm_class=4, receipted_message_id="X9", message_state=3)
    assert receipt_from_pdu(tlv_only) == receipt_from_pdu(tlv_only)
    assert receipt_from_pdu(tlv_only).state == "expired"


def test_receipt_from_smpplib_deliver_sm():
    lib = lib_make("deliver_sm", 3, source_addr="15550002", destination_addr="15550001",
                   esm_class=4, short_message=b"id:77 sub:001 dlvrd:000 submit date:2401011200 "
                   b"done date:2401011300 stat:UNDELIV err:011 text:",
                   receipted_message_id="77", message_state=5)
    pdu = decode(lib.generate())
    r = receipt_from_pdu(pdu)
    assert (r.message_id, r.state, r.error, r.delivered) == ("77", "undeliverable", "011", 0)
