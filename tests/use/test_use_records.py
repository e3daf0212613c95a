"""advx.use.read_records: a CSV row with more fields than its header (an unquoted comma in a
title) is one DataError naming the line, not a ValueError from csv.DictWriter later."""

from __future__ import annotations

import pytest
from advx.errors import DataError
from advx.use import read_records


def test_a_csv_row_with_extra_fields_names_its_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('query,title\nshoes,"red, blue"\nsocks,warm, wool\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"in.csv line 3 has 3 fields, the header 2 "
                                        r"\(query, title\); quote a field"):
        read_records(path)
    path.write_text('query,title\nshoes,"red, blue"\nsocks\n', encoding="utf-8")
    assert read_records(path) == [{"query": "shoes", "title": "red, blue"},
                                  {"query": "socks", "title": None}]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("query,title\nshoes,red\n".encode("utf-8-sig"))  # what Excel writes
    assert read_records(path) == [{"query": "shoes", "title": "red"}]
