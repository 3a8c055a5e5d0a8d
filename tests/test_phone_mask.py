"""Masked numbers: `mask` for logs, `tagged_mask` for lists, where two alike must differ."""

from __future__ import annotations

import re

from intercept.foundation.phone import mask, tagged_mask


def test_a_tagged_mask_tells_numbers_ending_alike_apart_and_is_stable():
    a, b = "+12065550101", "+13125550101"
    assert mask(a) == mask(b) == "+1••••••••01"
    assert tagged_mask(a) != tagged_mask(b)
    assert tagged_mask(a) == tagged_mask(a)
    assert re.fullmatch(r"\+1••••••••01 #[a-km-np-z2-9]{3}", tagged_mask(a))
    assert "5550101" not in tagged_mask(a)


def test_tags_rarely_collide_among_numbers_ending_alike():
    numbers = [f"+1206555{i:02d}01" for i in range(100)]
    assert len({tagged_mask(n) for n in numbers}) >= 99
