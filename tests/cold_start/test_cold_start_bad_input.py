"""Bad data files and late-validated keys of ``product_relevance``: one clear error each.

Every case used to end in a library traceback (``datasets``/pandas' UnicodeDecodeError or
EmptyDataError, ``int('high')`` at the first row with that label, a sampling temperature of 0
inside transformers) or to pass silently (YAML's ``yes`` read as 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from advx.components import BuildContext
from advx.errors import ConfigError, DataError
from advx_product_relevance import ProductRelevanceConfig, build_product_relevance

MAPPING = dict(
    preset="",
    columns={"query": "search", "label": "grade", "product_id": "sku"},
    fields={"title": "name", "description": "blurb"},
    label_map={"high": 1, "low": 0},
    cold_fraction=0.25,
)


def rows(n_products: int = 8) -> list[dict[str, str]]:
    out = []
    for p in range(n_products):
        for k, grade in enumerate(["high", "low"]):
            out.append({"sku": f"P{p}", "name": f"café widget {p}",
                        "blurb": f"line one of {p}\nline two", "search": f"query {k} {p}",
                        "grade": grade})
    return out


def build(tmp_path: Path, **keys):
    ctx = BuildContext(run_dir=tmp_path / "run", seed=0, device="cpu")
    return build_product_relevance(ProductRelevanceConfig(**{**MAPPING, **keys}), ctx)


def test_latin1_csv_names_the_file_and_the_encoding_key(tmp_path):
    path = tmp_path / "latin.csv"
    pd.DataFrame(rows()).to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv.*not valid utf-8.*task\.encoding"):
        build(tmp_path, path=str(path))
    task = build(tmp_path, path=str(path), encoding="latin-1")
    assert "café widget 0" in {f["title"] for f in task.products.values()}


def test_binary_csv_and_unknown_encoding(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"sku,name\x00\x01\x02\xff" * 20)
    with pytest.raises(DataError, match=r"data\.csv: this is a binary file"):
        build(tmp_path, path=str(path))
    with pytest.raises(ConfigError, match=r"task\.encoding 'klingon' is not a known"):
        build(tmp_path, path=str(path), encoding="klingon")


@pytest.mark.parametrize("content, message", [
    ("", r"empty\.csv is empty: expected a header line"),
    ("sku,name,blurb,search,grade\n", r"empty\.csv has a header line but no data rows"),
    ("\n\n", r"empty\.csv is empty"),
])
def test_empty_and_header_only_csv_in_our_words(tmp_path, content, message):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        build(tmp_path, path=str(path))


def test_data_errors_name_the_1_based_file_line(tmp_path):
    data = rows()
    data[3]["grade"] = "unknown"  # record 4: header on line 1, each record spans 2 lines
    path = tmp_path / "lines.csv"
    pd.DataFrame(data).to_csv(path, index=False)
    text = path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.endswith(",unknown"))
    start = line - 1  # the record starts one line earlier (the quoted description's newline)
    assert start == 8
    with pytest.raises(DataError, match=rf"lines\.csv line {start}: label 'unknown'"):
        build(tmp_path, path=str(path))


def test_record_number_when_file_lines_are_unknown(tmp_path):
    data = rows()
    data[3]["grade"] = "unknown"
    path = tmp_path / "data.jsonl"
    pd.DataFrame(data).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match=r"record 4 \(1-based, after the header\)"):
        build(tmp_path, path=str(path))


@pytest.mark.parametrize("value, shown", [("high", "'high'"), (True, "True .*yes/no")])
def test_label_map_values_must_be_class_indices(tmp_path, value, shown):
    path = tmp_path / "ok.csv"
    pd.DataFrame(rows()).to_csv(path, index=False)
    with pytest.raises(ConfigError, match=rf"task\.label_map\.low must be a class index.*"
                                          rf"got {shown}"):
        build(tmp_path, path=str(path), label_map={"high": 1, "low": value})


@pytest.mark.parametrize("key, value, message", [
    ("eval_temperature", 0.0, r"task\.eval_temperature must be > 0"),
    ("augment_per_product", 0, r"task\.augment_per_product must be ≥ 1, got 0"),
    ("eval_generate", -1, r"task\.eval_generate must be ≥ 0, got -1"),
])
def test_late_validated_task_keys_fail_at_build(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message):
        build(tmp_path, preset="demo", columns={}, fields={}, label_map={}, **{key: value})
