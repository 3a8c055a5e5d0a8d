"""GSM 03.38 / UCS-2 text, splitting into parts, and inbound decoding (checked against smpplib)."""

from __future__ import annotations

import math

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st

from intercept.gateways.smpp import (
    ESM_CLASS_UDHI,
    GSM7_BASIC,
    GSM7_EXTENSION,
    Concat,
    DataCoding,
    SubmitSm,
    can_gsm7,
    decode,
    decode_sm,
    decode_text,
    decode_user_data,
    encode,
    gsm7_decode,
    gsm7_encode,
    gsm7_septets,
    pack_septets,
    parse_udh,
    split,
    ucs2_decode,
    ucs2_encode,
    unpack_septets,
)

GSM_CHARS = "".join(ch for i, ch in enumerate(GSM7_BASIC) if i != 0x1B)
EXT_CHARS = "".join(GSM7_EXTENSION.values())


def test_tables_are_the_gsm_03_38_ones():
    assert len(GSM7_BASIC) == 128 and len(set(GSM7_BASIC)) == 128
    assert (GSM7_BASIC[0x00], GSM7_BASIC[0x02], GSM7_BASIC[0x09], GSM7_BASIC[0x11]) == (
        "@", "$", "Ç", "_")
    assert (GSM7_BASIC[0x24], GSM7_BASIC[0x40], GSM7_BASIC[0x5F], GSM7_BASIC[0x60]) == (
        "¤", "¡", "§", "¿")
    assert GSM7_BASIC[0x10:0x1B] == "Δ_ΦΓΛΩΠΨΣΘΞ"
    assert GSM7_EXTENSION == {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
                              0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€"}


def test_tables_agree_with_smpplib():
    # smpplib fills unused slots with '`' (and wrongly puts '`' at 0x5F, where GSM has '§').
    theirs = smpplib.gsm.GSM_CHARACTER_TABLE
    for code in range(128):
        if code not in (0x1B, 0x5F):
            assert theirs[code] == GSM7_BASIC[code], hex(code)
    for code in range(128):
        if theirs[0x80 + code] != "`":
            assert GSM7_EXTENSION[code] == theirs[0x80 + code]


def test_gsm7_round_trip_and_escapes():
    text = GSM_CHARS + EXT_CHARS
    data = gsm7_encode(text)
    assert len(data) == len(GSM_CHARS) + 2 * len(EXT_CHARS) == gsm7_septets(text)
    assert gsm7_decode(data) == text
    assert gsm7_encode("€") == b"\x1b\x65"
    assert gsm7_encode("@£$") == b"\x00\x01\x02"
    smp = smpplib.gsm.gsm_encode("Hello @ £5 {ok} [x] ~^|\\ €")
    assert smp == gsm7_encode("Hello @ £5 {ok} [x] ~^|\\ €")


@pytest.mark.parametrize("text", ["`", "ç", "á", "👋", "中", "\t", "\x00", "Ａ"])
def test_not_gsm(text):
    assert not can_gsm7("abc" + text)
    with pytest.raises(ValueError, match="index 3"):
        gsm7_encode("abc" + text)


def test_gsm7_decode_oddities():
    assert gsm7_decode(b"a\x1b\x41b") == "aAb"  # unknown extension code: the basic character
    assert gsm7_decode(b"a\x1b\x1bb") == "a b"  # ESC ESC: a space
    assert gsm7_decode(b"ab\x1b") == "ab "  # dangling escape: a space
    assert gsm7_decode(b"a\xe9") == "a\ufffd"  # not a septet
    assert gsm7_decode(b"\x1b\x65\x1b\x28\x7b") == "€{ä"


def test_pack_septets_known_vector():
    packed = pack_septets(gsm7_encode("hellohello"))
    assert packed.hex() == "e8329bfd4697d9ec37"
    assert gsm7_decode(unpack_septets(packed)) == "hellohello"
    assert unpack_septets(pack_septets(b"\x01" * 8)) == b"\x01" * 8


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_unpack_round_trip(septets, fill):
    packed = pack_septets(septets, fill)
    assert len(packed) == math.ceil((fill + 7 * len(septets)) / 8)
    assert unpack_septets(packed, len(septets), fill) == septets


def test_ucs2():
    assert ucs2_encode("hi👋") == b"\x00h\x00i\xd8\x3d\xdc\x4b"
    assert ucs2_decode(b"\x00h\x00i\xd8\x3d\xdc\x4b") == "hi👋"
    assert ucs2_decode(b"\xd8\x3d\x00h") == "\ufffdh"  # lone surrogate
    assert ucs2_decode(b"\x00h\x00") == "h\ufffd"  # odd octet


# ---------------------------------------------------------------------------------------------
# Splitting.

def test_single_part_limits():
    assert split("a" * 160, ref=1) == split("a" * 160, ref=9)
    [part] = split("a" * 160, ref=1)
    assert part.data_coding == 0 and part.esm_class == 0 and part.short_message == b"a" * 160
    assert len(split("a" * 158 + "€", ref=1)) == 1  # 160 septets
    assert len(split("a" * 159 + "€", ref=1)) == 2  # 161 septets
    [part] = split("я" * 70, ref=1)
    assert part.data_coding == 8 and len(part.short_message) == 140
    assert len(split("я" * 71, ref=1)) == 2
    assert len(split("😀" * 35, ref=1)) == 1  # 70 code units
    assert len(split("😀" * 35 + "a", ref=1)) == 2
    assert split("", ref=0)[0].short_message == b""


def test_udh_8_bit_parts():
    parts = split("x" * 306, ref=0x2A)
    assert [p.short_message[:6] for p in parts] == [b"\x05\x00\x03\x2a\x02\x01",
                                                    b"\x05\x00\x03\x2a\x02\x02"]
    assert [len(p.short_message) - 6 for p in parts] == [153, 153]
    assert all(p.esm_class == ESM_CLASS_UDHI for p in parts)
    assert len(split("x" * 307, ref=1)) == 3


def test_udh_16_bit_and_sar_and_payload():
    parts = split("x" * 304, ref=0x1234, mode="udh16")
    assert [p.short_message[:7] for p in parts] == [b"\x06\x08\x04\x12\x34\x02\x01",
                                                    b"\x06\x08\x04\x12\x34\x02\x02"]
    assert [len(p.short_message) - 7 for p in parts] == [152, 152]
    sar = split("y" * 200, ref=700, mode="sar")
    assert [(p.sar_msg_ref_num, p.sar_total_segments, p.sar_segment_seqnum) for p in sar] == [
        (700, 2, 1), (700, 2, 2)]
    assert sar[0].esm_class == 0 and sar[0].short_message == b"y" * 152
    [payload] = split("z" * 1000, ref=0, mode="payload")
    assert payload.short_message == b"" and payload.message_payload == b"z" * 1000
    [short] = split("z" * 10, ref=0, mode="payload")
    assert short.short_message == b"z" * 10 and short.message_payload is None


def test_ucs2_part_sizes():
    assert [len(p.short_message) for p in split("я" * 134, ref=1)] == [140, 140]
    assert [len(p.short_message) for p in split("я" * 132, ref=1, mode="udh16")] == [139, 139]
    assert [len(p.short_message) for p in split("я" * 132, ref=1, mode="sar")] == [132, 132]


def test_escape_never_split():
    text = "a" * 152 + "€" + "b" * 10  # the escape would straddle septets 153/154
    parts = split(text, ref=1)
    first = parts[0].short_message[6:]
    assert first == b"a" * 152 and parts[1].short_message[6:] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_never_split():
    text = "я" * 66 + "😀" + "b" * 5  # the pair would straddle code units 67/68
    parts = split(text, ref=1)
    assert parts[0].short_message[6:] == ucs2_encode("я" * 66)
    assert parts[1].short_message[6:] == ucs2_encode("😀bbbbb")


def test_split_errors_and_forced_encodings():
    with pytest.raises(ValueError, match="ref 256"):
        split("x" * 200, ref=256)
    split("x" * 200, ref=256, mode="udh16")
    with pytest.raises(ValueError, match="at most 255"):
        split("x" * 153 * 256, ref=1)
    with pytest.raises(ValueError, match="not in the GSM"):
        split("ü ç", ref=1, encoding="gsm7")
    assert split("abc", ref=1, encoding="ucs2")[0].short_message == b"\x00a\x00b\x00c"
    with pytest.raises(ValueError, match="mode"):
        split("abc", ref=1, mode="bogus")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["Hello there, " * 30, "Привет, как дела? " * 12,
                                  "short one", "Доброе утро"])
def test_same_parts_as_smpplib(text):
    theirs, coding, esm = smpplib.gsm.make_parts(text)
    ours = split(text, ref=theirs[0][3] if len(theirs) > 1 else 0)
    assert [p.short_message for p in ours] == theirs
    assert {p.data_coding for p in ours} == {coding}
    assert {p.esm_class for p in ours} == {esm}


def test_smpplib_parts_decode_and_our_submits_parse_in_smpplib():
    text = "Long message with {braces} and € " * 10
    theirs, coding, esm = smpplib.gsm.make_parts(text)
    decoded = [decode_user_data(data_coding=coding, esm_class=esm, short_message=p)
               for p in theirs]
    assert [d.concat.seq for d in decoded] == list(range(1, len(theirs) + 1))
    assert "".join(d.text for d in decoded) == text
    template = SubmitSm(sequence=1, source_addr="15550001", destination_addr="15550002",
                        registered_delivery=1)
    for i, part in enumerate(split(text, ref=5), 1):
        lib = smpplib.smpp.parse_pdu(encode(part.submit_sm(template, sequence=i)),
                                     client=None, sequence=0)
        assert lib.esm_class == ESM_CLASS_UDHI and lib.registered_delivery == 1
        assert lib.short_message == part.short_message and lib.sequence == i


# ---------------------------------------------------------------------------------------------
# Decoding inbound.

def test_decode_by_data_coding():
    assert decode_text(b"caf\xe9", DataCoding.LATIN1) == "café"
    assert decode_text(b"\x00\x01", DataCoding.DEFAULT) == "@£"
    assert decode_text(b"caf\xe9", DataCoding.DEFAULT, default_alphabet="latin-1") == "café"
    assert decode_text(b"abc", DataCoding.IA5) == "abc"
    assert decode_text(b"\x04\x1f", DataCoding.UCS2) == "П"
    assert decode_text(b"\x04\x1f", 0x18) == "П"  # GSM DCS: UCS-2, message class 0
    assert decode_text(b"\x00", 0x11) == "@"  # GSM DCS: GSM-7, class 1
    assert decode_text(b"\x00", 0xF0) == "@"  # GSM DCS: GSM-7, flash
    assert decode_text(b"\xff", 0xF4) == "\xff"  # GSM DCS: 8-bit data
    assert decode_text(b"\xcf", DataCoding.CYRILLIC) == "Я"


def test_decode_udh_and_sar():
    part = split("x" * 200, ref=0xAB, mode="udh")[1]
    data = decode_user_data(data_coding=0, esm_class=0x40, short_message=part.short_message)
    assert data.concat == Concat(0xAB, 2, 2) and data.text == "x" * 47
    assert data.udh == b"\x00\x03\xab\x02\x02"
    part16 = split("x" * 200, ref=0xABCD, mode="udh16")[0]
    assert decode_user_data(data_coding=0, esm_class=0x43,
                            short_message=part16.short_message).concat == Concat(0xABCD, 2, 1)
    sar = decode_user_data(data_coding=8, short_message=b"\x00a", sar_msg_ref_num=9,
                           sar_total_segments=3, sar_segment_seqnum=2)
    assert sar.concat == Concat(9, 3, 2) and sar.text == "a"
    # A UDH with a port IE before the concatenation IE.
    udh = b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x01"
    assert decode_user_data(data_coding=4, esm_class=0x40,
                            short_message=udh + b"hi").concat == Concat(7, 2, 1)


def test_decode_tolerates_broken_headers():
    bad_length = decode_user_data(data_coding=0, esm_class=0x40, short_message=b"\x50abc")
    assert bad_length.concat is None and bad_length.body == b"\x50abc"
    assert parse_udh(b"\x00\x03\x01\x00\x01") is None  # total 0
    assert parse_udh(b"\x00\x03\x01\x02\x03") is None  # seq beyond total
    assert parse_udh(b"\x00\x05\x01") is None  # IE longer than the header
    no_sar = decode_user_data(data_coding=0, short_message=b"a", sar_msg_ref_num=1,
                              sar_total_segments=2, sar_segment_seqnum=3)
    assert no_sar.concat is None


def test_decode_sm_prefers_message_payload():
    pdu = decode(encode(SubmitSm(sequence=1, data_coding=8, message_payload=ucs2_encode("hé"))))
    assert decode_sm(pdu).text == "hé"


# ---------------------------------------------------------------------------------------------
# Properties of split().

gsm_text = st.text(alphabet=GSM_CHARS + EXT_CHARS, max_size=700)
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=400)


@settings(max_examples=300, deadline=None)
@given(st.one_of(gsm_text, any_text), st.sampled_from(["udh", "udh16", "sar"]),
       st.integers(0, 255))
def test_split_parts_fit_and_never_cut_a_character(text, mode, ref):
    parts = split(text, ref=ref, mode=mode)
    ucs2 = parts[0].data_coding == DataCoding.UCS2
    assert ucs2 == (not can_gsm7(text))
    bodies = []
    for part in parts:
        data = decode_user_data(
            data_coding=part.data_coding, esm_class=part.esm_class,
            short_message=part.short_message, sar_msg_ref_num=part.sar_msg_ref_num,
            sar_total_segments=part.sar_total_segments,
            sar_segment_seqnum=part.sar_segment_seqnum)
        body = data.body
        bodies.append(data.text)
        udh_octets = len(part.short_message) - len(body)
        if ucs2:
            assert len(part.short_message) <= 140
            assert not 0xD8 <= body[-2] <= 0xDB if body else True
            assert not 0xDC <= body[0] <= 0xDF if body else True
        else:
            udh_septets = math.ceil(udh_octets * 8 / 7)
            assert udh_septets + len(body) <= 160
            assert not body.endswith(b"\x1b")
        if len(parts) > 1:
            assert data.concat == Concat(ref, len(parts), parts.index(part) + 1)
    assert "".join(bodies) == text  # each part decodes alone: nothing was cut in half
