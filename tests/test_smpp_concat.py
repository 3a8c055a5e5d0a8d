"""Reassembly of inbound concatenated SMS: any order, duplicates, timeouts, split -> reassemble."""

from __future__ import annotations

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st

from intercept.gateways.smpp import (
    Concat,
    DeliverSm,
    Duplicate,
    Reassembled,
    Reassembler,
    UserData,
    decode,
    decode_sm,
    decode_user_data,
    encode,
    split,
)

SRC, DST = "15550002", "15550001"


def parts_of(text: str, *, ref: int = 7, mode: str = "udh") -> list[UserData]:
    """What the receiving side decodes from each part that `split` produces."""
    out = []
    for part in split(text, ref=ref, mode=mode):  # type: ignore[arg-type]
        pdu = decode(encode(DeliverSm(
            sequence=1, source_addr=SRC, destination_addr=DST, data_coding=part.data_coding,
            esm_class=part.esm_class, short_message=part.short_message,
            message_payload=part.message_payload, sar_msg_ref_num=part.sar_msg_ref_num,
            sar_total_segments=part.sar_total_segments,
            sar_segment_seqnum=part.sar_segment_seqnum)))
        out.append(decode_sm(pdu))
    return out


def raw_part(body: bytes, ref: int, total: int, seq: int, data_coding: int = 0) -> UserData:
    return UserData(text="", body=body, data_coding=data_coding,
                    concat=Concat(ref, total, seq))


def test_a_single_message_passes_straight_through():
    r = Reassembler()
    [part] = parts_of("hello")
    got = r.add(SRC, DST, part, now=5.0, token=41)
    assert got == Reassembled(source=SRC, destination=DST, text="hello", first_seen=5.0,
                              tokens=(41,))
    assert len(r) == 0


def test_parts_in_any_order_with_duplicates():
    text = "Are you there? " * 30
    p1, p2, p3 = parts_of(text)
    r = Reassembler()
    assert r.add(SRC, DST, p3, now=1, token="c") is None
    assert r.add(SRC, DST, p1, now=2, token="a") is None
    assert r.add(SRC, DST, p1, now=3, token="a2") is None  # duplicate: dropped, token kept
    assert len(r) == 1
    done = r.add(SRC, DST, p2, now=4, token="b")
    assert isinstance(done, Reassembled) and done.complete
    assert done.text == text and done.ref == 7 and done.total == 3 and done.first_seen == 1
    assert done.tokens == ("c", "a", "a2", "b")
    assert len(r) == 0


def test_late_copy_of_a_finished_message_is_a_duplicate():
    p1, p2 = parts_of("x" * 200)
    r = Reassembler(timeout=60)
    r.add(SRC, DST, p1, now=0)
    assert r.add(SRC, DST, p2, now=1).complete
    assert r.add(SRC, DST, p2, now=2, token=9) == Duplicate(9)
    # Same key, other content: a new message, not a duplicate.
    q1, _ = parts_of("y" * 200)
    assert r.add(SRC, DST, q1, now=3) is None and len(r) == 1
    # Once the finished message is forgotten, a copy starts a new one.
    r2 = Reassembler(timeout=60)
    r2.add(SRC, DST, p1, now=0)
    r2.add(SRC, DST, p2, now=1)
    assert r2.expire(now=62) == []
    assert r2.add(SRC, DST, p2, now=63) is None


def test_expire_gives_what_arrived_with_markers():
    text = "abcdefghij" * 46  # 460 septets: 4 parts
    parts = parts_of(text)
    r = Reassembler(timeout=30)
    r.add(SRC, DST, parts[0], now=100, token=1)
    r.add(SRC, DST, parts[2], now=101, token=3)
    assert r.expire(now=129) == []
    [given_up] = r.expire(now=130)
    assert not given_up.complete and given_up.missing == (2, 4)
    assert given_up.text == text[:153] + "[…]" + text[306:459] + "[…]"
    assert given_up.tokens == (1, 3) and len(r) == 0
    assert r.expire(now=1000) == []


def test_custom_marker_and_keys_kept_apart():
    r = Reassembler(timeout=10, missing_marker="…")
    a1, _ = parts_of("a" * 200, ref=1)
    b1, _ = parts_of("b" * 200, ref=1)
    c1, _ = parts_of("c" * 200, ref=2)
    r.add(SRC, DST, a1, now=0)
    r.add("other", DST, b1, now=0)
    r.add(SRC, "elsewhere", b1, now=0)
    r.add(SRC, DST, c1, now=0)
    assert len(r) == 4
    texts = sorted(m.text for m in r.expire(now=10))
    assert texts == ["a" * 153 + "…", "b" * 153 + "…", "b" * 153 + "…", "c" * 153 + "…"]


def test_max_pending_evicts_the_oldest_into_the_next_expire():
    r = Reassembler(timeout=600, max_pending=2)
    for ref in range(3):
        r.add(SRC, DST, parts_of("z" * 200, ref=ref)[0], now=ref)
    assert len(r) == 2
    [evicted] = r.expire(now=3)
    assert evicted.ref == 0 and not evicted.complete


def test_pairs_and_escapes_cut_by_a_sloppy_sender_still_read_right():
    data = "😀".encode("utf-16-be")
    r = Reassembler()
    r.add(SRC, DST, raw_part(b"\x00a" + data[:2], 3, 2, 1, data_coding=8), now=0)
    done = r.add(SRC, DST, raw_part(data[2:] + b"\x00b", 3, 2, 2, data_coding=8), now=0)
    assert done.text == "a😀b"
    r.add(SRC, DST, raw_part(b"x\x1b", 4, 2, 1), now=0)
    assert r.add(SRC, DST, raw_part(b"\x65y", 4, 2, 2), now=0).text == "x€y"
    # Incomplete: consecutive parts are still decoded together.
    r.add(SRC, DST, raw_part(b"\x00a" + data[:2], 5, 3, 1, data_coding=8), now=0)
    r.add(SRC, DST, raw_part(data[2:], 5, 3, 2, data_coding=8), now=0)
    assert r.expire(now=1e9)[0].text == "a😀[…]"


def test_smpplib_parts_reassemble():
    text = "Ціна? Скільки за годину? " * 8
    parts, coding, esm = smpplib.gsm.make_parts(text)
    r = Reassembler()
    results = [r.add(SRC, DST, decode_user_data(data_coding=coding, esm_class=esm,
                                                short_message=p), now=0)
               for p in reversed(parts)]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1].text == text


def test_bad_settings():
    with pytest.raises(ValueError, match="timeout"):
        Reassembler(timeout=0)
    with pytest.raises(ValueError, match="max_pending"):
        Reassembler(max_pending=0)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="abc €{}[]^~|\\@£\n", min_size=0, max_size=800),
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=400),
    ),
    st.sampled_from(["udh", "udh16", "sar", "payload"]),
    st.integers(0, 255),
    st.randoms(use_true_random=False),
    st.integers(0, 3),
)
def test_split_then_reassemble_in_any_order(text, mode, ref, rnd, copies):
    parts = parts_of(text, ref=ref, mode=mode)
    arrivals = list(parts) + [rnd.choice(parts) for _ in range(copies)]
    rnd.shuffle(arrivals)
    r = Reassembler()
    results = [r.add(SRC, DST, p, now=i) for i, p in enumerate(arrivals)]
    whole = [x for x in results if isinstance(x, Reassembled)]
    # An unsplit message has no key to recognise a copy by: the caller's dedup handles it.
    assert len(whole) == (len(arrivals) if parts[0].concat is None else 1)
    assert all(w.text == text and w.complete for w in whole)
    assert all(x is None or isinstance(x, Duplicate | Reassembled) for x in results)
    assert len(r) == 0
