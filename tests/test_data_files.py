"""Reading CSV / TSV / JSONL files: formats, malformed rows, encodings, and the errors that name the fix."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lit_loraplus.data.files import infer_format, read_jsonl, read_rows, read_table, require_columns, require_file


def test_read_table_without_quoting_keeps_stray_quotes_and_skips_malformed_rows(tmp_path: Path) -> None:
    """QUOTE_NONE keeps a lone '"' as text; a row with the wrong column count is skipped with a warning."""
    path = tmp_path / "t.tsv"
    path.write_text('a\tb\n"quoted text\t1\nonly-one-column\nx\t0\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="skipped 1 rows whose column count is not 2"):
        columns, rows = read_table(path, "\t", csv.QUOTE_NONE)
    assert columns == ["a", "b"] and rows == [{"a": '"quoted text', "b": "1"}, {"a": "x", "b": "0"}]


def test_read_table_strips_a_byte_order_mark_and_accepts_fieldnames(tmp_path: Path) -> None:
    """utf-8-sig removes the BOM from the first header; fieldnames read a headerless file from its first row."""
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffQuality\tx\n1\ty\n".encode())
    assert read_table(path, "\t", encoding="utf-8-sig")[0] == ["Quality", "x"]
    assert read_table(path, "\t", fieldnames=["p", "q"], encoding="utf-8-sig")[1][0] == {"p": "Quality", "q": "x"}


def test_strict_encoding_error_says_to_use_replace(tmp_path: Path) -> None:
    """Undecodable bytes under "strict" raise an error naming encoding_errors='replace'; "replace" reads them."""
    path = tmp_path / "bad.csv"
    path.write_bytes(b"text,label\ncaf\xd1 ok,1\n")
    with pytest.raises(ValueError, match=r"not valid utf-8 .*encoding_errors='replace'"):
        read_rows(path, "csv")
    assert read_rows(path, "csv", errors="replace")[1] == [{"text": "caf\ufffd ok", "label": "1"}]


def test_jsonl_reads_objects_and_names_a_bad_line(tmp_path: Path) -> None:
    """JSONL gives one dict a line (blank lines skipped); a broken line is reported by number."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p", "response": "r"}\n\n{"prompt": "q", "response": "s"}\n', encoding="utf-8")
    assert read_jsonl(path) == (
        ["prompt", "response"],
        [{"prompt": "p", "response": "r"}] + [{"prompt": "q", "response": "s"}],
    )
    path.write_text('{"prompt": "p"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not a JSON object"):
        read_jsonl(path)


def test_infer_format_from_suffix_or_setting(tmp_path: Path) -> None:
    """.csv/.tsv/.jsonl map to their format; an unknown suffix asks for file_format; a bad file_format is named."""
    assert [infer_format(Path(f"x{s}"), None) for s in (".csv", ".TSV", ".jsonl")] == ["csv", "tsv", "jsonl"]
    assert infer_format(Path("x.txt"), "tsv") == "tsv"
    with pytest.raises(ValueError, match="set `file_format`"):
        infer_format(Path("x.txt"), None)
    with pytest.raises(ValueError, match="`file_format='xml'` is unknown"):
        infer_format(Path("x.csv"), "xml")  # type: ignore[arg-type]


def test_missing_file_and_columns_are_named(tmp_path: Path) -> None:
    """A missing file names the setting and the expected path; absent columns are listed with those present."""
    with pytest.raises(FileNotFoundError, match=r"`train_file`: expected the file .*nope\.csv"):
        require_file(tmp_path / "nope.csv", "train_file")
    with pytest.raises(ValueError, match=r"`label_column='y'` is not a column.*Columns present: \['a', 'b'\]"):
        require_columns(tmp_path, ["a", "b"], [{"a": 1, "b": 2}], {"label_column": "y"})
    with pytest.raises(ValueError, match=r"`label_column='b'` is missing or empty in 1 rows \(first: row 2\)"):
        require_columns(tmp_path, ["a", "b"], [{"a": 1, "b": 2}, {"a": 3}], {"label_column": "b"})


def test_empty_text_or_label_cells_are_named_with_the_first_row(tmp_path: Path, minilm_path: Path) -> None:
    """A CSV whose text column is empty in some rows (and a label cell of blanks) is refused at construction,
    counting the rows and naming the first, instead of training on empty strings or a class called ''."""
    from lit_loraplus.data import TextClassificationDataModule

    path = tmp_path / "rows.csv"
    path.write_text("text,label\nfine,pos\n,neg\nalso fine,  \n,pos\n")
    text = r"(?s)`text_columns\[0\]='text'` is missing or empty in 2 rows \(first: row 2\)"
    with pytest.raises(
        ValueError, match=text + r".*`label_column='label'` is missing or empty in 1 rows \(first: row 3\)"
    ):
        TextClassificationDataModule(str(path), str(minilm_path))
