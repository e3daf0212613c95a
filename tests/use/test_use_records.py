"""advx.use's readers of user files and run folders: CSV rows with extra fields, a byte-order
mark, round records of an older loop."""

from __future__ import annotations

import pytest
from advx.errors import DataError
from advx.rundir import RunDir
from advx.use import best_round, read_records


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


def test_best_round_reads_round_records_from_before_the_evaluated_key(tmp_path):
    run = RunDir(tmp_path)
    for round, score in ((0, 0.1), (1, 0.7), (2, 0.4)):  # an older loop: no "evaluated"
        run.append_metrics({"kind": "round", "round": round, "eval/score": score})
    run.append_metrics({"kind": "round", "round": 3, "evaluated": False, "eval/score": 0.9})
    assert best_round(run, "eval/score", "max") == 1
    assert best_round(run, "eval/score", "min") == 0
