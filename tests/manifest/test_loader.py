"""The file loader: discovery, YAML documents with lazy exact positions, CSV fleets, and clean
located rejection of hostile input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.diagnostics import Diagnostic
from reconciler.manifest import files, loader
from reconciler.manifest.documents import Document
from reconciler.manifest.loader import STATS, discover, load_csv, load_yaml_file
from reconciler.manifest.yaml_build import NATIVE_PARSER

FIXTURES = Path(__file__).parent / "fixtures" / "loader"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def load_one(tmp_path: Path, content: str | bytes) -> tuple[list[Document], list[Diagnostic]]:
    return load_yaml_file(write(tmp_path, "m.yaml", content))


def only_error(diagnostics: list[Diagnostic]) -> Diagnostic:
    errors = [d for d in diagnostics if d.severity == "error"]
    assert len(errors) == 1, diagnostics
    return errors[0]


# --- discovery --------------------------------------------------------------------------------


def test_discover_walks_directories_sorted_skipping_hidden(tmp_path: Path) -> None:
    for name in [
        "b/z.yaml",
        "b/a.yml",
        "a.YAML",
        "c/d/e.yaml",
        "notes.txt",
        ".hidden/x.yaml",
        "b/.swap.yaml",
        "fleet.csv",
    ]:
        write(tmp_path, name, "kind: X\n")
    single = write(tmp_path / "elsewhere", "one.yaml", "kind: X\n")

    files, diagnostics = discover([tmp_path, single, tmp_path / "b" / "z.yaml"])

    assert diagnostics == []
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.YAML",
        "b/a.yml",
        "b/z.yaml",
        "c/d/e.yaml",
        "elsewhere/one.yaml",  # a file reached twice is listed once
    ]


def test_discover_reports_missing_and_unsupported_paths(tmp_path: Path) -> None:
    csv_file = write(tmp_path, "fleet.csv", "id\n")
    files, diagnostics = discover([tmp_path / "nope", csv_file])
    assert files == []
    assert [(d.location.file, d.code, d.severity) for d in diagnostics] == [
        (str(tmp_path / "nope"), "not-found", "error"),
        (str(csv_file), "file-type", "error"),
    ]
    assert "no such file or directory" in diagnostics[0].message


# --- YAML documents ---------------------------------------------------------------------------


def test_the_libyaml_parser_is_used() -> None:
    assert NATIVE_PARSER  # ruamel.yaml.clib is a dependency


MULTI = """\
# leading comment
kind: Stack
name: north
---
# empty documents (this one, and the null one below) are skipped
--- null
---
kind: Device
id: "dev-1"
dev_eui: 70B3D57ED0000001
count: 0x1F
ratio: 1_000.5
join_eui: 0000000000000000
flag: yes
real_flag: true
date: 2024-01-01
nothing: ~
created: 2024-01-01T10:00:00Z
"""


def test_multi_document_file_gives_plain_data_per_document(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, MULTI)
    assert diagnostics == []
    assert [d.index for d in documents] == [0, 3]  # indexes count the skipped documents
    assert documents[0].data == {"kind": "Stack", "name": "north"}
    assert documents[1].data == {
        "kind": "Device",
        "id": "dev-1",
        "dev_eui": "70B3D57ED0000001",
        "count": 31,
        "ratio": 1000.5,
        "join_eui": 0,  # unquoted digits are a YAML integer; the models decide what that means
        "flag": "yes",  # YAML 1.2: only true/false are booleans
        "real_flag": True,
        "date": "2024-01-01",  # timestamps stay strings
        "nothing": None,
        "created": "2024-01-01T10:00:00Z",
    }
    assert all(d.file == str(tmp_path / "m.yaml") for d in documents)


def test_fixture_file_loads(tmp_path: Path) -> None:
    documents, diagnostics = load_yaml_file(FIXTURES / "application.yaml")
    assert diagnostics == []
    assert [d.data["kind"] for d in documents] == ["Application", "Device"]
    assert documents[1].locate(["app_key", "env"]).line == 20


def test_utf8_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, "\ufeffname: café\r\nid: x\r\n".encode())
    assert diagnostics == []
    assert documents[0].data == {"name": "café", "id": "x"}
    assert documents[0].locator(["id"]) == (2, 1)
    assert documents[0].locator(["name"]) == (1, 1)


LOCATED = """\
kind: Application
id: app
webhooks:
  - id: first
    headers: {X-A: "1", X-B: "2"}
  - id: second
    base_url: https://x
defaults: &defaults
  frequency_plan_id: EU_863_870
  mac_settings:
    rx1_delay: 5
device:
  <<: *defaults
  name: café ünïcode
  id: dev
"""


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ([], (1, 1)),
        (["kind"], (1, 1)),
        (["webhooks"], (3, 1)),
        (["webhooks", 0], (4, 5)),
        (["webhooks", 0, "headers", "X-B"], (5, 25)),
        (["webhooks", 1, "base_url"], (7, 5)),
        (["device", "id"], (15, 3)),
        # merged keys are located where they are written
        (["device", "frequency_plan_id"], (9, 3)),
        (["device", "mac_settings", "rx1_delay"], (11, 5)),
        # missing parts fall back to the nearest existing ancestor
        (["webhooks", 7, "id"], (3, 1)),
        (["webhooks", 1, "nope"], (6, 5)),
        (["device", "name", "deeper"], (14, 3)),
    ],
)
def test_locator_gives_exact_line_and_column(
    tmp_path: Path, path: list[str | int], position: tuple[int, int]
) -> None:
    documents, diagnostics = load_one(tmp_path, LOCATED)
    assert diagnostics == []
    assert documents[0].locator(path) == position
    location = documents[0].locate(path)
    assert (location.line, location.column) == position


def test_columns_count_characters_not_bytes(tmp_path: Path) -> None:
    documents, _ = load_one(tmp_path, "naïve: [é, ü, x]\n")
    assert documents[0].locator(["naïve", 2]) == (1, 15)


def test_locator_maps_to_the_same_document_index(tmp_path: Path) -> None:
    documents, _ = load_one(tmp_path, "a: 1\n---\n---\n\n  b: 2\n---\nc: 3\n")
    assert [(d.index, d.data) for d in documents] == [(0, {"a": 1}), (2, {"b": 2}), (3, {"c": 3})]
    assert documents[1].locator(["b"]) == (5, 3)
    assert documents[2].locator(["c"]) == (7, 1)


def test_positions_are_computed_lazily_once_per_file(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", MULTI)
    before = STATS.position_indexes_built
    documents, diagnostics = load_yaml_file(path)
    assert diagnostics == []
    # Valid input: parsed once, no position index.
    assert STATS.position_indexes_built == before
    assert documents[1].locator(["dev_eui"]) == (10, 1)
    assert STATS.position_indexes_built == before + 1
    # The index is cached and shared by the file's documents.
    assert documents[0].locator(["name"]) == (3, 1)
    assert documents[1].locator(["count"]) == (11, 1)
    assert STATS.position_indexes_built == before + 1


def test_syntax_error_is_located_and_readable(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, "a: 1\n---\nb: [1, 2\nc: 3\n")
    assert [d.data for d in documents] == [{"a": 1}]  # documents before the error are kept
    error = only_error(diagnostics)
    assert error.code == "yaml-syntax"
    assert (error.location.line, error.location.column) == (4, 2)
    assert error.message == (
        "YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence started at line 3, column 4)"
    )
    assert str(error).startswith(f"{tmp_path / 'm.yaml'}:4:2: error: YAML syntax error")


def test_tab_indentation_error(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "a:\n\t- b\n")[1])
    assert (error.location.line, error.location.column) == (2, 1)
    assert "found character that cannot start any token" in error.message


def test_control_character_is_located(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "a: 1\nb: éx\x01y\n".encode())[1])
    assert (error.location.line, error.location.column) == (2, 6)
    assert error.message == "YAML syntax error: control characters are not allowed"


# --- hostile input ----------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_bomb_is_rejected_at_the_alias_that_breaks_the_budget(tmp_path: Path) -> None:
    started = time.monotonic()
    documents, diagnostics = load_one(tmp_path, BILLION_LAUGHS + "---\nok: true\n")
    assert time.monotonic() - started < 2
    error = only_error(diagnostics)
    assert error.code == "yaml-alias-bomb"
    # Aliases on lines 2-5 add 74,718 nodes; the first *e (66,430 nodes) breaks the budget.
    assert (error.location.line, error.location.column) == (6, 8)
    assert "aliases expand this document by more than 100,000 nodes" in error.message
    assert [d.data for d in documents] == [{"ok": True}]  # the next document still loads


def test_ordinary_aliases_and_merge_keys_are_allowed(tmp_path: Path) -> None:
    content = "base: &base {plan: EU, mac: {rx1_delay: 5}}\ndevices:\n" + "".join(
        f"  - {{<<: *base, id: dev-{i}, tags: &t{i} [a, b], again: *t{i}}}\n" for i in range(3000)
    )
    documents, diagnostics = load_one(tmp_path, content)
    assert diagnostics == []
    devices = documents[0].data["devices"]
    assert devices[2999] == {
        "plan": "EU",
        "mac": {"rx1_delay": 5},
        "id": "dev-2999",
        "tags": ["a", "b"],
        "again": ["a", "b"],
    }


def test_merge_precedence(tmp_path: Path) -> None:
    content = "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n"
    documents, _ = load_one(tmp_path, content)
    assert documents[0].data["c"] == {"x": 1, "y": 3, "z": 2}


def test_recursive_and_undefined_aliases_are_errors(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "a: &a [1, *a]\n")[1])
    assert (error.code, error.location.line, error.location.column) == ("yaml-alias", 1, 11)
    assert "refers to a collection that contains it" in error.message
    error = only_error(load_one(tmp_path, "a: *nowhere\n")[1])
    assert (error.code, error.location.line, error.location.column) == ("yaml-alias", 1, 4)


def test_duplicate_key_is_located_at_the_second_and_names_the_first(tmp_path: Path) -> None:
    content = "kind: Device\nroot_keys:\n  app_key: 0123456789ABCDEF\n  x: 1\n  app_key: FEDCBA98\n"
    documents, diagnostics = load_one(tmp_path, content)
    assert documents == []
    error = only_error(diagnostics)
    assert error.code == "duplicate-key"
    assert (error.location.line, error.location.column) == (5, 3)
    assert error.message == 'duplicate key "app_key" (first defined at line 3)'
    assert "0123456789ABCDEF" not in str(error) and "FEDCBA98" not in str(error)


def test_duplicate_key_next_to_a_merge_and_duplicate_merge(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "a: &a {x: 1}\nb:\n  <<: *a\n  y: 1\n  y: 2\n")[1])
    assert (error.code, error.location.line) == ("duplicate-key", 5)
    error = only_error(load_one(tmp_path, "a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n")[1])
    assert (error.code, error.location.line, error.message) == (
        "duplicate-key",
        4,
        'duplicate key "<<" (first defined at line 3)',
    )


def test_problem_in_one_document_does_not_hide_the_others(tmp_path: Path) -> None:
    content = "a: 1\na: 2\n---\nb: !!binary aGVsbG8=\n---\nc: 3\n"
    documents, diagnostics = load_one(tmp_path, content)
    assert [d.data for d in documents] == [{"c": 3}]
    assert [(d.code, d.location.line) for d in diagnostics] == [
        ("duplicate-key", 2),
        ("yaml-tag", 4),
    ]


@pytest.mark.parametrize(
    "content",
    [
        "a: !!python/object:os.system {}\n",
        "a: !!python/name:os.system\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x, y}\n",
        "a: !custom value\n",
        "a: !!omap [x: 1]\n",
    ],
)
def test_non_standard_tags_are_rejected(tmp_path: Path, content: str) -> None:
    documents, diagnostics = load_one(tmp_path, content)
    assert documents == []
    error = only_error(diagnostics)
    assert (error.code, error.location.line, error.location.column) == ("yaml-tag", 1, 4)
    assert error.message.startswith("unsupported YAML tag !")


def test_standard_tags_are_honoured(tmp_path: Path) -> None:
    content = 'a: !!str 0123\nb: !!int "42"\nc: !!float "1.5"\nd: ! 12\ne: !!null ""\n'
    documents, diagnostics = load_one(tmp_path, content)
    assert diagnostics == []
    assert documents[0].data == {"a": "0123", "b": 42, "c": 1.5, "d": "12", "e": None}
    error = only_error(load_one(tmp_path, "a: !!int twelve\n")[1])
    assert (error.code, error.message) == ("yaml-tag", "value is not a valid !!int")


def test_yaml_1_1_directive_is_a_warning(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, "%YAML 1.1\n---\na: yes\n")
    assert documents[0].data == {"a": "yes"}
    assert [(d.severity, d.code) for d in diagnostics] == [("warning", "yaml-version")]


def test_non_utf8_bytes_name_line_column_and_offset(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, b"a: 1\nname: caf\xe9 \xc3\xa9\n")
    assert documents == []
    error = only_error(diagnostics)
    assert error.code == "encoding"
    assert (error.location.line, error.location.column) == (2, 10)
    assert error.message == "not valid UTF-8: byte 0xE9 at offset 14"


def test_utf16_and_binary_files_are_rejected(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "a: 1\n".encode("utf-16"))[1])
    assert (error.code, error.message) == ("encoding", "file is UTF-16 encoded: save it as UTF-8")
    error = only_error(load_one(tmp_path, b"a: 1\nb: \x00\x01\x02")[1])
    assert (error.code, error.location.line, error.location.column) == ("binary", 2, 4)
    assert error.message == "binary file: NUL byte at offset 8"


def test_enormous_file_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:  # sparse: no disk or time spent
        stream.truncate(files.CSV_FILE.max_bytes + 1)
    documents, diagnostics = load_yaml_file(path)
    assert documents == []
    error = only_error(diagnostics)
    assert error.code == "too-large"
    assert "a manifest file may have at most 16 MiB" in error.message
    table, diagnostics = load_csv(path)
    assert table is None and only_error(diagnostics).code == "too-large"


def test_scalar_size_limit(tmp_path: Path) -> None:
    script = "x" * 40_960  # the largest TTS formatter script is fine
    documents, diagnostics = load_one(tmp_path, f"script: |\n  {script}\n")
    assert diagnostics == [] and documents[0].data["script"] == script + "\n"
    big = "x" * (loader.YAML_LIMITS.max_scalar_chars + 1)
    error = only_error(load_one(tmp_path, f"a: 1\nscript: {big}\n")[1])
    assert (error.code, error.location.line, error.location.column) == (
        "yaml-scalar-too-large",
        2,
        9,
    )


def test_huge_integer_is_rejected(tmp_path: Path) -> None:
    error = only_error(load_one(tmp_path, "n: " + "9" * 5000 + "\n")[1])
    assert error.code == "yaml-number-too-large"


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000 + "]" * 100_000,  # would crash libyaml-based composers (C recursion)
        "a: " + "[" * 100_000,  # unterminated
        "".join(" " * i + "- \n" for i in range(200)),  # block nesting
        "".join(f"{' ' * i}k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n",
    ],
)
def test_deep_nesting_is_a_clean_error(tmp_path: Path, content: str) -> None:
    started = time.monotonic()
    documents, diagnostics = load_one(tmp_path, content)
    # libyaml's work grows with depth x tokens: parsing must stop at the limit, not read on.
    assert time.monotonic() - started < 2
    assert documents == []
    error = only_error(diagnostics)
    assert error.code == "yaml-too-deep"
    assert error.message == "collections nested more than 64 levels deep"


def test_deep_nesting_after_another_problem_stops_the_file(tmp_path: Path) -> None:
    content = "ok: 1\n---\na: 1\na: 2\nb: " + "[" * 100_000 + "\n---\nnever: read\n"
    started = time.monotonic()
    documents, diagnostics = load_one(tmp_path, content)
    assert time.monotonic() - started < 2
    assert [d.data for d in documents] == [{"ok": 1}]
    assert [(d.code, d.location.line) for d in diagnostics] == [
        ("duplicate-key", 4),
        ("yaml-too-deep", 5),
    ]
    assert documents[0].locator(["ok"]) == (1, 1)  # the position index stops there too


def test_non_string_keys_are_passed_through(tmp_path: Path) -> None:
    documents, diagnostics = load_one(tmp_path, "2: a\nnull: b\ntrue: c\n1.5: d\n")
    assert diagnostics == []
    assert documents[0].data == {2: "a", None: "b", True: "c", 1.5: "d"}
    error = only_error(load_one(tmp_path, "? [a, b]\n: c\n")[1])
    assert (error.code, error.location.line) == ("yaml-complex-key", 1)


def test_unreadable_file_is_a_diagnostic(tmp_path: Path) -> None:
    documents, diagnostics = load_yaml_file(tmp_path / "missing.yaml")
    assert documents == []
    assert only_error(diagnostics).code == "io"


# --- CSV fleets -------------------------------------------------------------------------------


def test_csv_semicolon_with_stripped_header_and_omitted_empty_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "fleet.csv",
        "\ufeff id ; dev_eui;name ;app_key\n"
        "dev-1;0004A30B00200001; Probe 1 ;0011\n"
        "\n"
        ";0004A30B00200002;;\n"
        " ; ; ; \n"
        "dev-3;0004A30B00200003;Probe, with comma\n",
    )
    table, diagnostics = load_csv(path)
    # The short last row is read with its missing cell empty, and said so (issue 12).
    assert [(d.location.line, d.severity, d.code) for d in diagnostics] == [
        (6, "warning", "csv-missing-cells")
    ]
    assert table is not None
    assert (table.separator, table.header) == (";", ["id", "dev_eui", "name", "app_key"])
    assert [(row.line, row.values) for row in table.rows] == [
        (2, {"id": "dev-1", "dev_eui": "0004A30B00200001", "name": "Probe 1", "app_key": "0011"}),
        (4, {"dev_eui": "0004A30B00200002"}),
        (6, {"id": "dev-3", "dev_eui": "0004A30B00200003", "name": "Probe, with comma"}),
    ]
    location = table.locate(table.rows[2], "name")
    assert (location.file, location.line, location.column) == (str(path), 6, 3)


def test_csv_comma_with_quoted_multiline_cells_keeps_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "fleet.csv",
        "id,name,description\r\n"
        'a,"Probe ""A""","line one\r\nline two\r\nline three"\r\n'
        'b,"x;y",\r\n'
        "\r\n"
        'c,"multi\nline",d\r\n'
        "d,z,\r\n",
    )
    table, diagnostics = load_csv(path)
    assert diagnostics == []
    assert table is not None and table.separator == ","
    assert [(row.line, row.values["id"]) for row in table.rows] == [
        (2, "a"),
        (5, "b"),
        (7, "c"),
        (9, "d"),
    ]
    assert table.rows[0].values["name"] == 'Probe "A"'
    assert table.rows[0].values["description"] == "line one\r\nline two\r\nline three"
    assert table.rows[1].values == {"id": "b", "name": "x;y"}


def test_csv_fixture_file(tmp_path: Path) -> None:
    table, diagnostics = load_csv(FIXTURES / "fleet.csv")
    assert diagnostics == [] and table is not None
    assert [(row.line, row.values["name"]) for row in table.rows] == [
        (2, "Soil probe 001"),
        (4, "Soil probe\n002"),
    ]


def test_csv_extra_cells_are_located_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.csv", "id;dev_eui\na;1;\nb;2;oops;more\nc;3\n")
    table, diagnostics = load_csv(path)
    assert table is not None
    assert [row.values["id"] for row in table.rows] == ["a", "c"]  # a trailing `;` is tolerated
    error = only_error(diagnostics)
    assert (error.code, error.location.line, error.location.column) == ("csv-extra-cells", 3, 3)
    assert error.message == "row has 4 cells but the header (line 1) names 2 columns"


def test_csv_unclosed_quote_is_a_located_error(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.csv", 'id,name\na,ok\nb,"never closed\nc,x\n')
    table, diagnostics = load_csv(path)
    assert table is None
    error = only_error(diagnostics)
    assert (error.code, error.location.line) == ("csv-syntax", 3)
    assert error.message == "unclosed quote in the row starting at line 3"


def test_csv_bad_quoting_is_a_located_error(tmp_path: Path) -> None:
    table, diagnostics = load_csv(write(tmp_path, "f.csv", 'id,name\na,"x"y\n'))
    assert table is None
    error = only_error(diagnostics)
    assert (error.code, error.location.line) == ("csv-syntax", 2)


def test_csv_file_level_problems(tmp_path: Path) -> None:
    table, diagnostics = load_csv(write(tmp_path, "empty.csv", "\n \n"))
    assert table is None and only_error(diagnostics).code == "csv-header"

    table, diagnostics = load_csv(write(tmp_path, "dup.csv", "id;name;id\n"))
    error = only_error(diagnostics)
    assert table is None
    assert (error.code, error.location.line, error.location.column) == (
        "csv-duplicate-column",
        1,
        3,
    )

    table, diagnostics = load_csv(write(tmp_path, "latin1.csv", b"id;name\na;Caf\xe9\n"))
    error = only_error(diagnostics)
    assert table is None
    assert (error.code, error.location.line, error.location.column) == ("encoding", 2, 6)

    table, diagnostics = load_csv(write(tmp_path, "bin.csv", b"id\n\x00\x00"))
    assert table is None and only_error(diagnostics).code == "binary"


def test_csv_oversized_cell_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "f.csv", "id;note\na;" + "x" * 200_000 + "\n")
    table, diagnostics = load_csv(path)
    assert table is None
    error = only_error(diagnostics)
    assert (error.code, error.location.line) == ("csv-syntax", 2)
    assert "field larger than field limit" in error.message


def test_csv_header_only_gives_an_empty_table(tmp_path: Path) -> None:
    table, diagnostics = load_csv(write(tmp_path, "f.csv", "id,dev_eui\n"))
    assert diagnostics == []
    assert table is not None and table.rows == [] and table.header == ["id", "dev_eui"]
