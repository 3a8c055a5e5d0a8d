"""Sans-IO SMPP 3.4 codec: PDUs as msgspec Structs, `encode()`, and a streaming `Decoder`.

Bytes in, PDUs out; no sockets, no trio, no clock. The trio client feeds whatever it receives
to a `Decoder` and writes what `encode()` returns.

Framing errors never raise out of the decoder; they come out as `MalformedPdu` events:

- a frame whose command_length is below 16 or above `max_length` is *fatal*: the byte stream
  cannot be re-framed reliably, so the decoder reports it once (status ESME_RINVCMDLEN) and then
  ignores everything; the client answers generic_nack and drops the connection;
- an unknown command id (ESME_RINVCMDID), a body that ends before its mandatory fields
  (ESME_RINVCMDLEN), an sm_length past the end of the body (ESME_RINVMSGLEN), a broken TLV
  stream (ESME_RINVOPTPARSTREAM) or a typed TLV of an impossible width (ESME_RINVPARLEN) only
  spoil their own frame: the decoder skips that frame and carries on with the next one.

`response_for()` builds the answer: the matching ``*_resp`` for a request, and for a
`MalformedPdu` a generic_nack (header errors), the matching ``*_resp`` carrying the error
(body errors of a known request), or None (a malformed response: there is nothing to answer).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, overload

import msgspec

HEADER_LENGTH = 16
"""Octets in a PDU header: command_length, command_id, command_status, sequence_number."""
DEFAULT_MAX_LENGTH = 65536
"""The largest command_length the `Decoder` accepts unless told otherwise."""
INTERFACE_VERSION = 0x34
"""SMPP version 3.4, as carried in bind PDUs."""
MAX_SEQUENCE = 0x7FFFFFFF
"""Sequence numbers run from 1 to this, then wrap to 1."""
RESPONSE_BIT = 0x80000000
"""Set in the command_id of every response PDU."""


class CommandId(enum.IntEnum):
    """SMPP 3.4 command ids (section 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(enum.IntEnum):
    """SMPP 3.4 command_status values (section 5.1.3)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


class Tag(enum.IntEnum):
    """SMPP 3.4 optional parameter (TLV) tags (section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState(enum.IntEnum):
    """Values of the message_state TLV (section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


ESM_CLASS_UDHI = 0x40
"""esm_class bit: short_message starts with a User Data Header."""
ESM_CLASS_TYPE_MASK = 0x3C
"""esm_class bits 5..2: the message type."""
ESM_CLASS_DELIVERY_RECEIPT = 0x04
"""Message type of an SMSC delivery receipt (in deliver_sm)."""
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
"""Message type of an intermediate delivery notification (in deliver_sm)."""
REGISTERED_DELIVERY_RECEIPT = 0x01
"""registered_delivery: ask for a receipt on final success or failure."""
REGISTERED_DELIVERY_FAILURE = 0x02
"""registered_delivery: ask for a receipt on failure only."""


def next_sequence(current: int) -> int:
    """The sequence number after `current`: 1, 2, ... 0x7FFFFFFF, then 1 again."""
    return 1 if current >= MAX_SEQUENCE or current < 1 else current + 1


# ---------------------------------------------------------------------------------------------
# PDUs


class Tlv(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An optional parameter this codec has no field for, kept as it came and re-sent as is."""

    tag: int
    value: bytes


class Pdu(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every PDU: the header's sequence number and command status."""

    command_id: ClassVar[int]
    sequence: int
    status: int = 0

    @property
    def is_response(self) -> bool:
        """Whether this PDU answers a request (bit 31 of its command_id)."""
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def command_name(self) -> str:
        """The SMPP name of the command, e.g. ``submit_sm``."""
        return CommandId(self.command_id).name.lower()


class GenericNack(Pdu, frozen=True, kw_only=True, gc=False):
    """Negative answer to a PDU whose header could not be handled."""

    command_id: ClassVar[int] = CommandId.GENERIC_NACK


class EnquireLink(Pdu, frozen=True, kw_only=True, gc=False):
    """Keep-alive probe; either side may send it."""

    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


class EnquireLinkResp(Pdu, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


class Unbind(Pdu, frozen=True, kw_only=True, gc=False):
    """Ends the session; either side may send it."""

    command_id: ClassVar[int] = CommandId.UNBIND


class UnbindResp(Pdu, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


class Bind(Pdu, frozen=True, kw_only=True, gc=False):
    """Fields shared by the three bind requests."""

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


class BindTransceiver(Bind, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


class BindTransmitter(Bind, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


class BindReceiver(Bind, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


class BindResp(Pdu, frozen=True, kw_only=True, gc=False):
    """Fields shared by the three bind responses (the body is empty when status is an error)."""

    system_id: str = ""
    sc_interface_version: int | None = None
    tlvs: tuple[Tlv, ...] = ()


class BindTransceiverResp(BindResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


class BindTransmitterResp(BindResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


class BindReceiverResp(BindResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


class ShortMessage(Pdu, frozen=True, kw_only=True, gc=False):
    """Fields shared by submit_sm and deliver_sm (SMPP 3.4 sections 4.4.1 and 4.6.1).

    The typed optional parameters follow the mandatory fields; any other TLV is kept in `tlvs`.
    """

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    message_payload: bytes | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    tlvs: tuple[Tlv, ...] = ()
    """Every TLV without a field above, as received."""


class SubmitSm(ShortMessage, frozen=True, kw_only=True, gc=False):
    """An outbound (MT) message, ESME to SMSC."""

    command_id: ClassVar[int] = CommandId.SUBMIT_SM


class DeliverSm(ShortMessage, frozen=True, kw_only=True, gc=False):
    """An inbound (MO) message or a delivery receipt, SMSC to ESME."""

    command_id: ClassVar[int] = CommandId.DELIVER_SM


class DataSm(Pdu, frozen=True, kw_only=True, gc=False):
    """data_sm: a message whose content travels in TLVs (some SMSCs deliver MO this way)."""

    command_id: ClassVar[int] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    message_payload: bytes | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    tlvs: tuple[Tlv, ...] = ()
    """Every TLV without a field above, as received."""


class MessageResp(Pdu, frozen=True, kw_only=True, gc=False):
    """Fields shared by submit_sm_resp, deliver_sm_resp and data_sm_resp."""

    message_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


class SubmitSmResp(MessageResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


class DeliverSmResp(MessageResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


class DataSmResp(MessageResp, frozen=True, kw_only=True, gc=False):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP


class MalformedPdu(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A frame the decoder could not turn into a PDU.

    `status` is the error to answer with; `command_status` is the status the frame itself
    carried (useful when a response is malformed). `fatal` means the stream cannot be re-framed:
    the decoder ignores everything after it and the connection should be closed.
    """

    command_id: int | None
    sequence: int | None
    status: int
    reason: str
    fatal: bool = False
    command_status: int | None = None
    frame: bytes = b""


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        GenericNack, EnquireLink, EnquireLinkResp, Unbind, UnbindResp,
        BindTransceiver, BindTransceiverResp, BindTransmitter, BindTransmitterResp,
        BindReceiver, BindReceiverResp, SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp,
        DataSm, DataSmResp,
    )
}
"""The PDU class for each command id this codec understands."""

_RESPONSE_CLASS: dict[type[Pdu], type[Pdu]] = {
    EnquireLink: EnquireLinkResp,
    Unbind: UnbindResp,
    BindTransceiver: BindTransceiverResp,
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    SubmitSm: SubmitSmResp,
    DeliverSm: DeliverSmResp,
    DataSm: DataSmResp,
}


@overload
def response_for(pdu: MalformedPdu, status: int | None = None) -> Pdu | None: ...
@overload
def response_for(pdu: Pdu, status: int = 0, **fields: Any) -> Pdu: ...
def response_for(pdu: Pdu | MalformedPdu, status: int | None = None, **fields: Any) -> Pdu | None:
    """The PDU that answers `pdu`, with the same sequence number.

    For a request: its ``*_resp`` with `status` (default ESME_ROK) and `fields` (e.g.
    ``message_id=``). For a `MalformedPdu`: a generic_nack when its header was at fault (bad
    length, unknown command), the request's own ``*_resp`` carrying the error when only its
    body was bad, and None when the malformed frame was itself a response.
    """
    if isinstance(pdu, MalformedPdu):
        code = pdu.status if status is None else status
        cls = PDU_CLASSES.get(pdu.command_id) if pdu.command_id is not None else None
        if pdu.fatal or cls is None:
            return GenericNack(sequence=pdu.sequence or 0, status=code)
        if pdu.command_id is not None and pdu.command_id & RESPONSE_BIT:
            return None
        return _RESPONSE_CLASS[cls](sequence=pdu.sequence or 0, status=code)
    resp = _RESPONSE_CLASS.get(type(pdu))
    if resp is None:
        raise ValueError(f"A {pdu.command_name} is not a request, so it has no response.")
    return resp(sequence=pdu.sequence, status=status or 0, **fields)


# ---------------------------------------------------------------------------------------------
# Encoding

_HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")
_B2 = struct.Struct(">BB")
_B3 = struct.Struct(">BBB")
_B5 = struct.Struct(">BBBBB")
_B1 = struct.Struct(">B")
_H = struct.Struct(">H")


def _cstr(value: str, name: str, size: int) -> bytes:
    """A C-Octet String field of at most `size` octets, its terminating NUL included."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} has characters outside Latin-1; SMPP C-strings "
                         "are octets.") from None
    if len(raw) >= size:
        raise ValueError(f"{name} {value!r} is {len(raw)} octets long; SMPP allows at most "
                         f"{size - 1}.")
    if 0 in raw:
        raise ValueError(f"{name} {value!r} contains a NUL octet, which would end the field "
                         "early.")
    return raw + b"\0"


def _enc_empty(pdu: Any) -> bytes:
    return b""


def _enc_bind(p: Bind) -> bytes:
    return b"".join((
        _cstr(p.system_id, "system_id", 16),
        _cstr(p.password, "password", 9),
        _cstr(p.system_type, "system_type", 13),
        _B3.pack(p.interface_version, p.addr_ton, p.addr_npi),
        _cstr(p.address_range, "address_range", 41),
    ))


def _enc_extra(tlvs: tuple[Tlv, ...], out: list[bytes]) -> None:
    for tlv in tlvs:
        value = tlv.value
        if len(value) > 0xFFFF:
            raise ValueError(f"TLV 0x{tlv.tag:04x} holds {len(value)} octets; a TLV holds at "
                             "most 65535.")
        out.append(_TLV_HEADER.pack(tlv.tag, len(value)))
        out.append(value)


def _enc_bind_resp(p: BindResp) -> bytes:
    out = [_cstr(p.system_id, "system_id", 16)]
    if p.sc_interface_version is not None:
        out.append(_TLV_HEADER.pack(Tag.SC_INTERFACE_VERSION, 1))
        out.append(_B1.pack(p.sc_interface_version))
    if p.tlvs:
        _enc_extra(p.tlvs, out)
    return b"".join(out)


def _enc_message_tlvs(p: ShortMessage | DataSm, out: list[bytes]) -> None:
    """Append the typed TLVs that are set, then the preserved ones, to `out`."""
    if p.sar_msg_ref_num is not None:
        out.append(b"\x02\x0c\x00\x02" + _H.pack(p.sar_msg_ref_num))
    if p.sar_total_segments is not None:
        out.append(b"\x02\x0e\x00\x01" + _B1.pack(p.sar_total_segments))
    if p.sar_segment_seqnum is not None:
        out.append(b"\x02\x0f\x00\x01" + _B1.pack(p.sar_segment_seqnum))
    if p.message_payload is not None:
        payload = p.message_payload
        if len(payload) > 0xFFFF:
            raise ValueError(f"message_payload is {len(payload)} octets; a TLV holds at most "
                             "65535.")
        out.append(_TLV_HEADER.pack(Tag.MESSAGE_PAYLOAD, len(payload)))
        out.append(payload)
    if p.receipted_message_id is not None:
        rid = _cstr(p.receipted_message_id, "receipted_message_id", 65)
        out.append(_TLV_HEADER.pack(Tag.RECEIPTED_MESSAGE_ID, len(rid)))
        out.append(rid)
    if p.message_state is not None:
        out.append(b"\x04\x27\x00\x01" + _B1.pack(p.message_state))
    if p.tlvs:
        _enc_extra(p.tlvs, out)


def _enc_sm(p: ShortMessage) -> bytes:
    sm = p.short_message
    if len(sm) > 254:
        raise ValueError(f"short_message is {len(sm)} octets; SMPP allows at most 254 (use "
                         "message_payload or split the text).")
    if sm and p.message_payload is not None:
        raise ValueError("short_message and message_payload are both set; SMPP allows only "
                         "one of them.")
    out = [
        _cstr(p.service_type, "service_type", 6),
        _B2.pack(p.source_addr_ton, p.source_addr_npi),
        _cstr(p.source_addr, "source_addr", 21),
        _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
        _cstr(p.destination_addr, "destination_addr", 21),
        _B3.pack(p.esm_class, p.protocol_id, p.priority_flag),
        _cstr(p.schedule_delivery_time, "schedule_delivery_time", 17),
        _cstr(p.validity_period, "validity_period", 17),
        _B5.pack(p.registered_delivery, p.replace_if_present_flag, p.data_coding,
                 p.sm_default_msg_id, len(sm)),
        sm,
    ]
    _enc_message_tlvs(p, out)
    return b"".join(out)


def _enc_data_sm(p: DataSm) -> bytes:
    out = [
        _cstr(p.service_type, "service_type", 6),
        _B2.pack(p.source_addr_ton, p.source_addr_npi),
        _cstr(p.source_addr, "source_addr", 65),
        _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
        _cstr(p.destination_addr, "destination_addr", 65),
        _B3.pack(p.esm_class, p.registered_delivery, p.data_coding),
    ]
    _enc_message_tlvs(p, out)
    return b"".join(out)


def _enc_message_resp(p: MessageResp) -> bytes:
    out = [_cstr(p.message_id, "message_id", 65)]
    if p.tlvs:
        _enc_extra(p.tlvs, out)
    return b"".join(out)


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    GenericNack: _enc_empty, EnquireLink: _enc_empty, EnquireLinkResp: _enc_empty,
    Unbind: _enc_empty, UnbindResp: _enc_empty,
    BindTransceiver: _enc_bind, BindTransmitter: _enc_bind, BindReceiver: _enc_bind,
    BindTransceiverResp: _enc_bind_resp, BindTransmitterResp: _enc_bind_resp,
    BindReceiverResp: _enc_bind_resp,
    SubmitSm: _enc_sm, DeliverSm: _enc_sm, DataSm: _enc_data_sm,
    SubmitSmResp: _enc_message_resp, DeliverSmResp: _enc_message_resp,
    DataSmResp: _enc_message_resp,
}

_INT_LIMITS = {"sequence": 0xFFFFFFFF, "status": 0xFFFFFFFF, "sar_msg_ref_num": 0xFFFF}


def _range_error(pdu: Pdu) -> str:
    """Name the integer field of `pdu` that does not fit its width (the slow path)."""
    for name in pdu.__struct_fields__:
        value = getattr(pdu, name)
        if value is None or isinstance(value, str | bytes):
            continue
        if name == "tlvs":
            for tlv in value:
                if not isinstance(tlv.tag, int) or not 0 <= tlv.tag <= 0xFFFF:
                    return f"{pdu.command_name} has a TLV tag {tlv.tag!r}; tags are 0 to 65535."
        elif not isinstance(value, int):
            return f"{pdu.command_name} field {name} is {value!r}; it must be an integer."
        else:
            limit = _INT_LIMITS.get(name, 0xFF)
            if not 0 <= value <= limit:
                return f"{pdu.command_name} field {name} is {value}; it must be 0 to {limit}."
    return f"{pdu.command_name} has a field that SMPP cannot carry."


def encode(pdu: Pdu) -> bytes:
    """The wire form of `pdu`, header included. Raises ValueError for a field SMPP cannot carry."""
    enc = _ENCODERS.get(type(pdu))
    if enc is None:
        raise TypeError(f"{type(pdu).__name__} is not a PDU this codec can encode.")
    try:
        body = enc(pdu)
        return _HEADER.pack(16 + len(body), pdu.command_id, pdu.status, pdu.sequence) + body
    except struct.error:
        raise ValueError(_range_error(pdu)) from None


def encode_many(pdus: Iterable[Pdu]) -> bytes:
    """The PDUs back to back, ready for a single ``send_all``."""
    return b"".join([encode(p) for p in pdus])


# ---------------------------------------------------------------------------------------------
# Decoding


class _Bad(Exception):
    """A body error inside one frame; the decoder turns it into a `MalformedPdu`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _short(field: str) -> _Bad:
    return _Bad(CommandStatus.ESME_RINVCMDLEN,
                f"the body ends before its {field} field (command_length too short)")


def _cstr_at(buf: bytes, pos: int, end: int, field: str) -> tuple[str, int]:
    """Read a C-Octet String at `pos`; return it and the position after its NUL."""
    try:
        nul = buf.index(0, pos, end)
    except ValueError:
        if pos >= end:
            raise _short(field) from None
        raise _Bad(CommandStatus.ESME_RINVCMDLEN,
                   f"the {field} field has no terminating NUL before the end of the body"
                   ) from None
    return buf[pos:nul].decode("latin-1"), nul + 1


_INT_TLV = 0
_BYTES_TLV = 1
_CSTR_TLV = 2

_MESSAGE_TLVS: dict[int, tuple[str, int]] = {
    Tag.MESSAGE_PAYLOAD: ("message_payload", _BYTES_TLV),
    Tag.RECEIPTED_MESSAGE_ID: ("receipted_message_id", _CSTR_TLV),
    Tag.MESSAGE_STATE: ("message_state", _INT_TLV),
    Tag.SAR_MSG_REF_NUM: ("sar_msg_ref_num", _INT_TLV),
    Tag.SAR_TOTAL_SEGMENTS: ("sar_total_segments", _INT_TLV),
    Tag.SAR_SEGMENT_SEQNUM: ("sar_segment_seqnum", _INT_TLV),
}
_BIND_RESP_TLVS: dict[int, tuple[str, int]] = {
    Tag.SC_INTERFACE_VERSION: ("sc_interface_version", _INT_TLV),
}
_NO_TLVS: dict[int, tuple[str, int]] = {}


def _read_tlvs(buf: bytes, pos: int, end: int, typed: dict[int, tuple[str, int]]
               ) -> dict[str, Any]:
    """Decode the TLVs in ``buf[pos:end]`` into keyword arguments for the PDU class."""
    out: dict[str, Any] = {}
    extra: list[Tlv] = []
    while pos < end:
        if pos + 4 > end:
            raise _Bad(CommandStatus.ESME_RINVOPTPARSTREAM,
                       f"{end - pos} stray octet(s) follow the last field; a TLV header needs 4")
        tag, length = _TLV_HEADER.unpack_from(buf, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise _Bad(CommandStatus.ESME_RINVOPTPARSTREAM,
                       f"TLV 0x{tag:04x} declares {length} octets but only {end - pos} remain")
        spec = typed.get(tag)
        if spec is None:
            extra.append(Tlv(tag, buf[pos:stop]))
        else:
            name, kind = spec
            if kind == _INT_TLV:
                if not 1 <= length <= 4:
                    raise _Bad(CommandStatus.ESME_RINVPARLEN,
                               f"TLV {name} is {length} octets long; an integer TLV needs 1 to 4")
                out[name] = int.from_bytes(buf[pos:stop], "big")
            elif kind == _BYTES_TLV:
                out[name] = buf[pos:stop]
            else:
                raw = buf[pos:stop]
                nul = raw.find(0)
                out[name] = (raw if nul < 0 else raw[:nul]).decode("latin-1")
        pos = stop
    if extra:
        out["tlvs"] = tuple(extra)
    return out


def _dec_empty(cls: type[Pdu], buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    # Bodyless PDUs: stray body octets are ignored rather than refused.
    return cls(sequence=seq, status=status)


def _dec_bind(cls: type[Bind], buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    system_id, pos = _cstr_at(buf, pos, end, "system_id")
    password, pos = _cstr_at(buf, pos, end, "password")
    system_type, pos = _cstr_at(buf, pos, end, "system_type")
    if pos + 3 > end:
        raise _short("interface_version")
    version, ton, npi = buf[pos], buf[pos + 1], buf[pos + 2]
    address_range, pos = _cstr_at(buf, pos + 3, end, "address_range")
    return cls(sequence=seq, status=status, system_id=system_id, password=password,
               system_type=system_type, interface_version=version, addr_ton=ton, addr_npi=npi,
               address_range=address_range)


def _dec_bind_resp(cls: type[BindResp], buf: bytes, pos: int, end: int, seq: int,
                   status: int) -> Pdu:
    if pos >= end:  # an error response may come without a body
        return cls(sequence=seq, status=status)
    system_id, pos = _cstr_at(buf, pos, end, "system_id")
    if pos < end:
        return cls(sequence=seq, status=status, system_id=system_id,
                   **_read_tlvs(buf, pos, end, _BIND_RESP_TLVS))
    return cls(sequence=seq, status=status, system_id=system_id)


def _dec_sm(cls: type[ShortMessage], buf: bytes, pos: int, end: int, seq: int,
            status: int) -> Pdu:
    service_type, pos = _cstr_at(buf, pos, end, "service_type")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    source_ton = buf[pos]
    source_npi = buf[pos + 1]
    source_addr, pos = _cstr_at(buf, pos + 2, end, "source_addr")
    if pos + 2 > end:
        raise _short("dest_addr_ton")
    dest_ton = buf[pos]
    dest_npi = buf[pos + 1]
    destination_addr, pos = _cstr_at(buf, pos + 2, end, "destination_addr")
    if pos + 3 > end:
        raise _short("esm_class")
    esm_class = buf[pos]
    protocol_id = buf[pos + 1]
    priority = buf[pos + 2]
    schedule, pos = _cstr_at(buf, pos + 3, end, "schedule_delivery_time")
    validity, pos = _cstr_at(buf, pos, end, "validity_period")
    if pos + 5 > end:
        raise _short("registered_delivery")
    registered, replace, data_coding, default_id, sm_length = _B5.unpack_from(buf, pos)
    pos += 5
    stop = pos + sm_length
    if stop > end:
        raise _Bad(CommandStatus.ESME_RINVMSGLEN,
                   f"sm_length is {sm_length} but only {end - pos} octets of body remain")
    tlvs = _read_tlvs(buf, stop, end, _MESSAGE_TLVS) if stop < end else _NO_TLVS
    return cls(
        sequence=seq, status=status, service_type=service_type, source_addr_ton=source_ton,
        source_addr_npi=source_npi, source_addr=source_addr, dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi, destination_addr=destination_addr, esm_class=esm_class,
        protocol_id=protocol_id, priority_flag=priority, schedule_delivery_time=schedule,
        validity_period=validity, registered_delivery=registered,
        replace_if_present_flag=replace, data_coding=data_coding, sm_default_msg_id=default_id,
        short_message=buf[pos:stop], **tlvs,
    )


def _dec_data_sm(cls: type[DataSm], buf: bytes, pos: int, end: int, seq: int,
                 status: int) -> Pdu:
    service_type, pos = _cstr_at(buf, pos, end, "service_type")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    source_ton, source_npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr_at(buf, pos + 2, end, "source_addr")
    if pos + 2 > end:
        raise _short("dest_addr_ton")
    dest_ton, dest_npi = buf[pos], buf[pos + 1]
    destination_addr, pos = _cstr_at(buf, pos + 2, end, "destination_addr")
    if pos + 3 > end:
        raise _short("esm_class")
    esm_class, registered, data_coding = buf[pos], buf[pos + 1], buf[pos + 2]
    pos += 3
    tlvs = _read_tlvs(buf, pos, end, _MESSAGE_TLVS) if pos < end else _NO_TLVS
    return cls(
        sequence=seq, status=status, service_type=service_type, source_addr_ton=source_ton,
        source_addr_npi=source_npi, source_addr=source_addr, dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi, destination_addr=destination_addr, esm_class=esm_class,
        registered_delivery=registered, data_coding=data_coding, **tlvs,
    )


def _dec_message_resp(cls: type[MessageResp], buf: bytes, pos: int, end: int, seq: int,
                      status: int) -> Pdu:
    if pos >= end:  # SMPP 3.4 omits the body of a response with an error status
        return cls(sequence=seq, status=status)
    message_id, pos = _cstr_at(buf, pos, end, "message_id")
    if pos < end:
        return cls(sequence=seq, status=status, message_id=message_id,
                   **_read_tlvs(buf, pos, end, _NO_TLVS))
    return cls(sequence=seq, status=status, message_id=message_id)


_BodyDecoder = Callable[[Any, bytes, int, int, int, int], Pdu]
_DECODERS: dict[int, tuple[_BodyDecoder, type[Pdu]]] = {}
for _cls in PDU_CLASSES.values():
    if issubclass(_cls, ShortMessage):
        _DECODERS[_cls.command_id] = (_dec_sm, _cls)
    elif issubclass(_cls, DataSm):
        _DECODERS[_cls.command_id] = (_dec_data_sm, _cls)
    elif issubclass(_cls, MessageResp):
        _DECODERS[_cls.command_id] = (_dec_message_resp, _cls)
    elif issubclass(_cls, Bind):
        _DECODERS[_cls.command_id] = (_dec_bind, _cls)
    elif issubclass(_cls, BindResp):
        _DECODERS[_cls.command_id] = (_dec_bind_resp, _cls)
    else:
        _DECODERS[_cls.command_id] = (_dec_empty, _cls)
del _cls


def _command_label(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08x}"


def decode(frame: bytes, *, max_length: int = DEFAULT_MAX_LENGTH) -> Pdu | MalformedPdu:
    """Decode exactly one complete frame (header included); never raises on bad input."""
    decoder = Decoder(max_length=max_length)
    decoder.feed(frame)
    event = decoder.next_pdu()
    if event is None:
        return MalformedPdu(
            command_id=None, sequence=None, status=CommandStatus.ESME_RINVCMDLEN,
            reason=f"The frame is {len(frame)} octets but its command_length promises more.",
            frame=bytes(frame))
    if decoder.buffered and not isinstance(event, MalformedPdu):
        return MalformedPdu(
            command_id=event.command_id, sequence=event.sequence,
            status=CommandStatus.ESME_RINVCMDLEN, command_status=event.status,
            reason=f"The frame has {decoder.buffered} octets beyond its command_length.",
            frame=bytes(frame))
    return event


_U32 = struct.Struct(">I")
_ID_STATUS_SEQ = struct.Struct(">III")


class Decoder:
    """Turns a byte stream into PDUs: `feed()` what arrives, then take `next_pdu()` until None.

    Partial frames wait in the buffer. Errors come out as `MalformedPdu` events, never as
    exceptions; after a fatal one (an impossible command_length) the stream is unrecoverable
    and the decoder yields nothing more (`broken` is then True).
    """

    __slots__ = ("_buf", "_chunks", "_pending", "_pos", "broken", "max_length")

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH):
        if max_length < HEADER_LENGTH:
            raise ValueError(f"max_length is {max_length}; it must be at least {HEADER_LENGTH}.")
        self.max_length = max_length
        self.broken = False
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._pending = 0

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a PDU (a partial frame)."""
        return len(self._buf) - self._pos + self._pending

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes to the buffer (ignored once the decoder is broken)."""
        if data and not self.broken:
            self._chunks.append(bytes(data))
            self._pending += len(data)

    def _fill(self, need: int) -> bool:
        """Merge pending chunks so at least `need` octets follow `_pos`, if they have arrived."""
        have = len(self._buf) - self._pos
        if have + self._pending < need:
            return False
        if have == 0 and len(self._chunks) == 1:
            self._buf = self._chunks[0]
        else:
            self._buf = b"".join([self._buf[self._pos:], *self._chunks])
        self._pos = 0
        self._chunks.clear()
        self._pending = 0
        return True

    def next_pdu(self) -> Pdu | MalformedPdu | None:
        """The next complete PDU (or error event), or None until more bytes are fed."""
        if self.broken:
            return None
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            if not self._fill(4):
                return None
            buf = self._buf
            pos = 0
        length = _U32.unpack_from(buf, pos)[0]
        if length < HEADER_LENGTH or length > self.max_length:
            return self._fatal(length)
        if len(buf) - pos < length:
            if not self._fill(length):
                return None
            buf = self._buf
            pos = 0
        end = pos + length
        command_id, status, seq = _ID_STATUS_SEQ.unpack_from(buf, pos + 4)
        self._pos = end
        entry = _DECODERS.get(command_id)
        if entry is None:
            return MalformedPdu(
                command_id=command_id, sequence=seq, status=CommandStatus.ESME_RINVCMDID,
                command_status=status, frame=buf[pos:end],
                reason=f"{_command_label(command_id)} (sequence {seq}) is not a command this "
                       "codec supports.")
        try:
            return entry[0](entry[1], buf, pos + 16, end, seq, status)
        except _Bad as exc:
            code, why = exc.status, exc.reason
        except Exception as exc:  # a decoder bug must not take the connection down
            code, why = CommandStatus.ESME_RSYSERR, f"it could not be decoded ({exc!r})"
        return MalformedPdu(
            command_id=command_id, sequence=seq, status=code, command_status=status,
            frame=buf[pos:end],
            reason=f"{_command_label(command_id)} (sequence {seq}) is malformed: {why}.")

    def _fatal(self, length: int) -> MalformedPdu:
        self._fill(min(self.buffered, HEADER_LENGTH))
        head = self._buf[self._pos:self._pos + HEADER_LENGTH]
        command_id = _U32.unpack_from(head, 4)[0] if len(head) >= 8 else None
        status = _U32.unpack_from(head, 8)[0] if len(head) >= 12 else None
        seq = _U32.unpack_from(head, 12)[0] if len(head) >= 16 else None
        self.broken = True
        self._buf = b""
        self._pos = 0
        self._chunks.clear()
        self._pending = 0
        limit = f"below {HEADER_LENGTH}" if length < HEADER_LENGTH else f"above {self.max_length}"
        return MalformedPdu(
            command_id=command_id, sequence=seq, status=CommandStatus.ESME_RINVCMDLEN,
            command_status=status, fatal=True, frame=head,
            reason=f"A PDU declares command_length {length}, {limit}; the stream cannot be "
                   "re-framed after it and the connection should be closed.")

    def __iter__(self) -> Iterator[Pdu | MalformedPdu]:
        """Every complete PDU now buffered."""
        while (event := self.next_pdu()) is not None:
            yield event
