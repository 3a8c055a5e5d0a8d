"""Text for SMS: GSM 03.38 (7-bit default alphabet), UCS-2, splitting and inbound decoding.

Outbound, `split()` turns a text into the parts to submit: GSM-7 when every character is in the
GSM 03.38 default alphabet or its extension table (an extension character costs two septets),
UCS-2 (UTF-16-BE, surrogate pairs for emoji) otherwise. A text that does not fit one SMS is
concatenated with a User Data Header (8- or 16-bit reference), with the SAR TLVs, or sent whole
in message_payload. A part never ends inside an escape sequence or a surrogate pair.

SMPP carries GSM-7 *unpacked* (one septet per octet, data_coding 0); the SMSC packs it for the
radio. `pack_septets()` / `unpack_septets()` are here for the rare link that wants it packed.

Inbound, `decode_user_data()` (or `decode_sm()` for a PDU) strips the UDH, reads the
concatenation info from it or from the SAR TLVs, and decodes the text by data_coding.
"""

from __future__ import annotations

import enum
import re
from typing import Literal

import msgspec

from .codec import ESM_CLASS_UDHI, DataSm, ShortMessage, SubmitSm


class DataCoding(enum.IntEnum):
    """SMPP 3.4 data_coding values (section 5.2.19)."""

    DEFAULT = 0x00
    """SMSC default alphabet; GSM 03.38 here unless told otherwise."""
    IA5 = 0x01
    OCTET = 0x02
    LATIN1 = 0x03
    OCTET_UNSPECIFIED = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO2022JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KSC5601 = 0x0E


# ---------------------------------------------------------------------------------------------
# GSM 03.38

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet, indexed by septet; 0x1B is the escape to the extension."""

GSM7_EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
"""The GSM 03.38 extension table: septet after 0x1B -> character."""

GSM7_ESCAPE = 0x1B

assert len(GSM7_BASIC) == 128

# Text -> septets: every character maps to one or two ASCII-range characters; every ASCII
# character that is not GSM maps to a non-ASCII sentinel, so `translate(...).isascii()` tells
# whether the whole text is encodable, and the result's length is its septet count.
_NOT_GSM = "\x80"
_ENCODE: dict[int, str] = dict.fromkeys(range(128), _NOT_GSM)
_ENCODE.update({ord(ch): chr(code) for code, ch in enumerate(GSM7_BASIC) if code != GSM7_ESCAPE})
_ENCODE.update({ord(ch): "\x1b" + chr(code) for code, ch in GSM7_EXTENSION.items()})

# Septets (as Latin-1 characters) -> text; octets above 0x7F are not septets.
_DECODE: dict[int, str] = {code: ch for code, ch in enumerate(GSM7_BASIC)}
_DECODE.update(dict.fromkeys(range(128, 256), "\ufffd"))
# The character after an escape, *already translated* through the basic table -> its meaning.
# An unknown extension code shows the basic character (GSM 03.38 6.2.1.1); ESC ESC a space.
_AFTER_ESCAPE: dict[str, str] = {
    GSM7_BASIC[code]: GSM7_EXTENSION.get(code, GSM7_BASIC[code]) for code in range(128)
}
_AFTER_ESCAPE["\x1b"] = " "
_AFTER_ESCAPE["\ufffd"] = "\ufffd"
_ESCAPED = re.compile("\x1b(.?)", re.DOTALL)


def _unescape(match: re.Match[str]) -> str:
    return _AFTER_ESCAPE.get(match.group(1), " ")


def can_gsm7(text: str) -> bool:
    """Whether every character of `text` is in the GSM 03.38 alphabet or its extension."""
    return text.translate(_ENCODE).isascii()


def gsm7_septets(text: str) -> int:
    """How many septets `text` takes in GSM-7 (extension characters count two)."""
    return len(_gsm7_units(text))


def _gsm7_units(text: str) -> str:
    units = text.translate(_ENCODE)
    if not units.isascii():
        for index, ch in enumerate(text):
            if _ENCODE.get(ord(ch), _NOT_GSM) == _NOT_GSM:
                raise ValueError(f"Character {ch!r} (U+{ord(ch):04X}) at index {index} is not "
                                 "in the GSM 03.38 alphabet.")
    return units


def gsm7_encode(text: str) -> bytes:
    """GSM-7 unpacked: one septet per octet, escapes as 0x1B + code. ValueError if not GSM."""
    return _gsm7_units(text).encode("ascii")


def gsm7_decode(data: bytes) -> str:
    """Unpacked GSM-7 (one septet per octet) to text; an octet above 0x7F becomes U+FFFD."""
    text = data.decode("latin-1").translate(_DECODE)
    if "\x1b" in text:
        text = _ESCAPED.sub(_unescape, text)
    return text


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (one per octet) 8-in-7, after `fill_bits` zero bits (for a UDH)."""
    value = 0
    shift = fill_bits
    for septet in septets:
        value |= (septet & 0x7F) << shift
        shift += 7
    return value.to_bytes((shift + 7) // 8, "little")


def unpack_septets(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack packed GSM-7 into one septet per octet; `count` defaults to all whole septets."""
    value = int.from_bytes(data, "little") >> fill_bits
    available = (len(data) * 8 - fill_bits) // 7
    n = available if count is None else min(count, available)
    return bytes((value >> (7 * i)) & 0x7F for i in range(n))


def ucs2_encode(text: str) -> bytes:
    """UCS-2 as SMSCs take it: UTF-16-BE, characters beyond the BMP as surrogate pairs."""
    return text.encode("utf-16-be", "surrogatepass")


def ucs2_decode(data: bytes) -> str:
    """UTF-16-BE to text; a lone surrogate or an odd trailing octet becomes U+FFFD."""
    return data.decode("utf-16-be", "replace")


# ---------------------------------------------------------------------------------------------
# Decoding inbound messages

DefaultAlphabet = Literal["gsm7", "latin-1", "ascii"]

_CODECS: dict[int, str] = {
    int(DataCoding.IA5): "ascii",
    int(DataCoding.LATIN1): "latin-1",
    int(DataCoding.CYRILLIC): "iso8859_5",
    int(DataCoding.HEBREW): "iso8859_8",
    int(DataCoding.ISO2022JP): "iso2022_jp",
    int(DataCoding.KSC5601): "euc_kr",
}


def _alphabet(data_coding: int) -> str:
    """'gsm7', 'ucs2', 'octet' or a Python codec name for a data_coding value."""
    if data_coding == DataCoding.UCS2:
        return "ucs2"
    if data_coding == DataCoding.DEFAULT:
        return "gsm7"
    codec = _CODECS.get(data_coding)
    if codec:
        return codec
    # GSM 03.38 data coding scheme values, which some SMSCs pass through unchanged.
    group = data_coding >> 4
    if group == 1:  # general data coding, uncompressed, with a message class
        return ("gsm7", "octet", "ucs2", "octet")[(data_coding >> 2) & 3]
    if group in (0xC, 0xD):  # message waiting indication, GSM-7
        return "gsm7"
    if group == 0xE:  # message waiting indication, UCS-2
        return "ucs2"
    if group == 0xF:  # data coding / message class
        return "octet" if data_coding & 0x04 else "gsm7"
    return "octet"


def decode_text(data: bytes, data_coding: int, *, default_alphabet: DefaultAlphabet = "gsm7"
                ) -> str:
    """The text of message octets (without UDH) in the given data_coding; never raises.

    data_coding 0 means the SMSC's default alphabet: GSM-7 unpacked unless `default_alphabet`
    says the SMSC uses Latin-1 or ASCII. Binary (octet) data is shown as Latin-1.
    """
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm7":
        if data_coding == DataCoding.DEFAULT and default_alphabet != "gsm7":
            return data.decode(default_alphabet, "replace")
        return gsm7_decode(data)
    if alphabet == "ucs2":
        return ucs2_decode(data)
    if alphabet == "octet":
        return data.decode("latin-1")
    return data.decode(alphabet, "replace")


class Concat(msgspec.Struct, frozen=True, gc=False):
    """Where a part sits in a concatenated message."""

    ref: int
    total: int
    seq: int


class UserData(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A decoded inbound message or part: its text and what it says about concatenation."""

    text: str
    body: bytes
    """The message octets without the UDH (reassembly joins these before decoding)."""
    data_coding: int
    concat: Concat | None = None
    udh: bytes = b""
    """The raw User Data Header, without its length octet."""


def parse_udh(udh: bytes) -> Concat | None:
    """The concatenation info in a UDH (without its length octet), or None."""
    pos = 0
    found = None
    while pos + 2 <= len(udh):
        iei = udh[pos]
        length = udh[pos + 1]
        value = udh[pos + 2:pos + 2 + length]
        if len(value) < length:
            break
        if iei == 0x00 and length == 3:
            found = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            found = Concat((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + length
    if found is None or found.total == 0 or not 1 <= found.seq <= found.total:
        return None
    return found


def decode_user_data(
    *, data_coding: int, esm_class: int = 0, short_message: bytes = b"",
    message_payload: bytes | None = None, sar_msg_ref_num: int | None = None,
    sar_total_segments: int | None = None, sar_segment_seqnum: int | None = None,
    default_alphabet: DefaultAlphabet = "gsm7",
) -> UserData:
    """Strip the UDH, find the concatenation info (UDH or SAR TLVs) and decode the text.

    message_payload wins over short_message when present. A UDH whose length runs past the data
    is treated as no UDH; concatenation info with total 0 or seq outside 1..total is ignored.
    """
    data = message_payload if message_payload is not None else short_message
    body = data
    udh = b""
    concat = None
    if esm_class & ESM_CLASS_UDHI and data:
        length = data[0]
        if 1 + length <= len(data):
            udh = data[1:1 + length]
            body = data[1 + length:]
            concat = parse_udh(udh)
    if (concat is None and sar_msg_ref_num is not None and sar_total_segments
            and sar_segment_seqnum and sar_segment_seqnum <= sar_total_segments):
        concat = Concat(sar_msg_ref_num, sar_total_segments, sar_segment_seqnum)
    return UserData(text=decode_text(body, data_coding, default_alphabet=default_alphabet),
                    body=body, data_coding=data_coding, concat=concat, udh=udh)


def decode_sm(pdu: ShortMessage | DataSm, *, default_alphabet: DefaultAlphabet = "gsm7"
              ) -> UserData:
    """`decode_user_data()` for a deliver_sm, submit_sm or data_sm."""
    return decode_user_data(
        data_coding=pdu.data_coding, esm_class=pdu.esm_class,
        short_message=getattr(pdu, "short_message", b""), message_payload=pdu.message_payload,
        sar_msg_ref_num=pdu.sar_msg_ref_num, sar_total_segments=pdu.sar_total_segments,
        sar_segment_seqnum=pdu.sar_segment_seqnum, default_alphabet=default_alphabet)


# ---------------------------------------------------------------------------------------------
# Splitting outbound messages

SplitMode = Literal["udh", "udh16", "sar", "payload"]
TextEncoding = Literal["auto", "gsm7", "ucs2"]

GSM7_SINGLE = 160
"""Septets in one unconcatenated SMS."""
UCS2_SINGLE = 70
"""UTF-16 code units in one unconcatenated SMS."""
MAX_PARTS = 255
"""Most parts a concatenated message can have (the count is one octet)."""
MAX_PAYLOAD = 0xFFFF
"""Most octets message_payload can carry."""

# Septets / UTF-16 code units per part. udh: 6-octet UDH; udh16: 7 octets. SAR leaves the UDH
# to the SMSC, which may use a 16-bit reference, so it gets the smaller size.
_GSM7_PART = {"udh": 153, "udh16": 152, "sar": 152}
_UCS2_PART = {"udh": 67, "udh16": 66, "sar": 66}


class Part(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One submit_sm's worth of a message; field names match `SubmitSm`."""

    data_coding: int
    esm_class: int = 0
    """ESM_CLASS_UDHI when short_message starts with a UDH; OR it into the PDU's esm_class."""
    short_message: bytes = b""
    message_payload: bytes | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None

    def submit_sm(self, template: SubmitSm, *, sequence: int) -> SubmitSm:
        """`template` (addresses, registered_delivery...) carrying this part."""
        return msgspec.structs.replace(
            template, sequence=sequence, data_coding=self.data_coding,
            esm_class=template.esm_class | self.esm_class, short_message=self.short_message,
            message_payload=self.message_payload, sar_msg_ref_num=self.sar_msg_ref_num,
            sar_total_segments=self.sar_total_segments,
            sar_segment_seqnum=self.sar_segment_seqnum)


def _chunks(data: bytes, size: int, ucs2: bool) -> list[bytes]:
    """Cut `data` into pieces of at most `size` octets, never inside an escape or a pair."""
    out = []
    start = 0
    n = len(data)
    while start < n:
        end = start + size
        if end >= n:
            end = n
        elif ucs2:
            if 0xD8 <= data[end - 2] <= 0xDB:  # high surrogate: keep the pair together
                end -= 2
        elif data[end - 1] == GSM7_ESCAPE:  # an escape is always the first of two septets
            end -= 1
        out.append(data[start:end])
        start = end
    return out


def split(text: str, *, ref: int, mode: SplitMode = "udh", encoding: TextEncoding = "auto"
          ) -> list[Part]:
    """The parts to submit for `text`.

    One part when it fits a single SMS (160 GSM-7 septets, escapes counting two, or 70 UCS-2
    code units). Otherwise, by `mode`: "udh" concatenates with an 8-bit reference (153 septets
    or 67 code units per part), "udh16" with a 16-bit one (152 / 66), "sar" with the SAR TLVs
    (152 / 66, the SMSC builds the UDH), "payload" sends one submit_sm with message_payload.
    `ref` is the concatenation reference (0-255 for "udh", 0-65535 otherwise). `encoding`
    forces GSM-7 (ValueError if the text does not fit it) or UCS-2 instead of choosing.
    """
    if encoding == "ucs2" or (encoding == "auto" and not can_gsm7(text)):
        data = ucs2_encode(text)
        ucs2 = True
        data_coding = int(DataCoding.UCS2)
        single, unit = UCS2_SINGLE * 2, 2
    elif encoding in ("gsm7", "auto"):
        data = gsm7_encode(text)
        ucs2 = False
        data_coding = int(DataCoding.DEFAULT)
        single, unit = GSM7_SINGLE, 1
    else:
        raise ValueError(f"encoding {encoding!r} is not one of 'auto', 'gsm7', 'ucs2'.")
    if mode not in _GSM7_PART and mode != "payload":
        raise ValueError(f"mode {mode!r} is not one of 'udh', 'udh16', 'sar', 'payload'.")
    if len(data) <= single:
        return [Part(data_coding=data_coding, short_message=data)]
    if mode == "payload":
        if len(data) > MAX_PAYLOAD:
            raise ValueError(f"The message is {len(data)} octets; message_payload carries at "
                             f"most {MAX_PAYLOAD}.")
        return [Part(data_coding=data_coding, message_payload=data)]
    limit = 0xFF if mode == "udh" else 0xFFFF
    if not 0 <= ref <= limit:
        raise ValueError(f"ref {ref} does not fit mode {mode!r}; it must be 0 to {limit}.")
    size = (_UCS2_PART if ucs2 else _GSM7_PART)[mode] * unit
    pieces = _chunks(data, size, ucs2)
    total = len(pieces)
    if total > MAX_PARTS:
        raise ValueError(f"The message needs {total} parts; concatenation allows at most "
                         f"{MAX_PARTS}.")
    if mode == "sar":
        return [Part(data_coding=data_coding, short_message=piece, sar_msg_ref_num=ref,
                     sar_total_segments=total, sar_segment_seqnum=seq)
                for seq, piece in enumerate(pieces, 1)]
    if mode == "udh":
        head = bytes((5, 0x00, 3, ref, total))
    else:
        head = bytes((6, 0x08, 4, ref >> 8, ref & 0xFF, total))
    return [Part(data_coding=data_coding, esm_class=ESM_CLASS_UDHI,
                 short_message=head + bytes((seq,)) + piece)
            for seq, piece in enumerate(pieces, 1)]
