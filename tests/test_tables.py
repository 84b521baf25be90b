"""Your own data, in pure code: CSV parsing, checks that name the row or column, the run's split."""

import numpy as np
import pytest

from app.engine.config import RunConfig, TableRef
from app.engine.tables import (
    EXTENT,
    MAX_BYTES,
    MAX_COLUMNS,
    MAX_ROWS,
    Table,
    TableError,
    build_table,
    check_name,
    parse_csv,
    table_dataset,
)


def csv_bytes(rows: list[list]) -> bytes:
    return "\n".join(",".join(str(c) for c in r) for r in rows).encode()


ROWS = [["height", "weight", "name", "kind"]] + [
    [1.5 + i / 10, 50 + 3 * i, f"p{i}", "cat" if i % 3 else "dog"] for i in range(12)
]


def test_numeric_columns_are_inputs_text_columns_are_left_out():
    t = build_table(parse_csv(csv_bytes(ROWS)), target="kind")
    assert t.inputs == ["height", "weight"] and t.ignored == ("name",)
    assert t.task == "classification" and t.classes == ["cat", "dog"]
    assert t.x.shape == (12, 2) and t.x[3].tolist() == [1.8, 59.0]
    assert t.y.tolist() == [1.0 if i % 3 == 0 else 0.0 for i in range(12)]


def test_target_defaults_to_the_last_column_and_task_is_guessed():
    rows = [["a", "b", "y"]] + [[i, i * i, i * 0.37] for i in range(40)]
    t = build_table(rows)
    assert t.target == "y" and t.task == "regression" and t.n_classes == 0
    labels = [["a", "y"]] + [[i, ["lo", "mid", "hi"][i % 3]] for i in range(9)]
    assert build_table(labels).task == "classification"  # text targets are classes


def test_numeric_class_labels_sort_as_numbers():
    rows = [["x", "digit"]] + [[i, str(d)] for i, d in enumerate([10, 2, 1, 2, 10, 1])]
    assert build_table(rows).classes == ["1", "2", "10"]


def test_bytes_round_trip_and_hash_is_content():
    t = build_table(parse_csv(csv_bytes(ROWS)), target="kind")
    back = Table.from_bytes(t.to_bytes())
    assert back.hash == t.hash and back.inputs == t.inputs and back.classes == t.classes
    np.testing.assert_array_equal(back.x, t.x)
    np.testing.assert_array_equal(back.y, t.y)
    other = build_table(parse_csv(csv_bytes(ROWS)), target="weight", task="regression")
    assert other.hash != t.hash


def test_csv_inputs_are_standardised_and_the_split_is_seeded():
    rows = [["a", "b", "c", "y"]] + [[i, 100 * i, (-1) ** i, i % 2] for i in range(50)]
    t = build_table(rows, target="y")
    ds = table_dataset("mine", t, train_ratio=0.6, seed=3, features=["x1", "x2"])
    x = np.vstack([ds.x_train, ds.x_test])
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-12)
    assert len(ds.y_train) == 30 and ds.points_train is None and ds.extent is None
    again = table_dataset("mine", t, train_ratio=0.6, seed=3, features=["x1", "x2"])
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    other = table_dataset("mine", t, train_ratio=0.6, seed=4, features=["x1", "x2"])
    assert not np.array_equal(other.x_train, ds.x_train)


def test_drawn_points_keep_their_coordinates_and_the_square():
    rows = [["x1", "x2", "label"], [1.5, -2.0, 1], [-3.0, 4.0, 0], [0.5, 0.5, 1], [5.0, -5.0, 0]]
    t = build_table(rows, target="label", task="classification", kind="drawn")
    ds = table_dataset("drawn", t, train_ratio=0.5, seed=0, features=["x1", "x2", "x1*x2"])
    points = np.vstack([ds.points_train, ds.points_test])
    assert sorted(map(tuple, points.tolist())) == sorted(tuple(r[:2]) for r in rows[1:])
    assert ds.extent == EXTENT and ds.x_train.shape[1] == 3


def test_a_config_on_an_uploaded_set_sizes_its_network_from_the_ref():
    ref = TableRef(hash="0" * 64, kind="csv", task="classification", n_classes=5,
                   inputs=[f"c{i}" for i in range(7)], rows=100)  # fmt: skip
    config = RunConfig(dataset="my set", table=ref, hidden=[4])
    assert config.layers == [7, 4, 5] and config.input_features == ref.inputs
    assert RunConfig(dataset="spiral", table=ref).table is None  # built-ins store nothing


BAD = [
    (b"", "the file is empty"),
    (b"   \n\n", "the file is empty"),
    ("a,b\n1,2\n3,4\n5,6\n7,8\n".encode("utf-16"), "row 1: byte 0xff is not UTF-8"),
    ("a,b\n1,2\n3,4\n5,6\n7,\xe9\n".encode("latin-1"), "row 5: byte 0xe9 is not UTF-8"),
    (b"a,b,y\n1,2,0\n3,x,1\n5,6,0\n7,8,1\n", "row 3, column 'b': 'x' is not a number"),
    (b"a,b,y\n1,2,0\n3,4,1\n5,,0\n7,8,1\n", "row 4, column 'b': the value is missing"),
    (b"a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,\n", "row 5, column 'y': the target is missing"),
    (b"a,b,y\n1,2,0\n3,4,0\n5,6,0\n7,8,0\n", "column 'y' has one class only ('0')"),
    (b"a,b,a\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n", "columns 1 and 3 are both named 'a'"),
    (b"a,,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n", "column 2 has no name"),
    (b"a,b,y\n1,2,0\n3,4\n5,6,0\n7,8,1\n", "row 3 has 2 cells; the first row names 3 columns"),
    (b"a,b,y\n1,2,0\n", "the file has 1 data rows; a set needs at least 4"),
    (b"a,b,y\n1,2,0\n3,inf,1\n5,6,0\n7,8,1\n", "row 3, column 'b': 'inf' is not a finite"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_input_names_the_row_or_column(data, message):
    with pytest.raises(TableError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        build_table(parse_csv(data), target="y" if b",y" in data else None)


def test_limits_are_stated_in_the_message():
    wide = [[f"c{j}" for j in range(MAX_COLUMNS + 1)]] + [list(range(MAX_COLUMNS + 1))] * 5
    with pytest.raises(TableError, match=f"has {MAX_COLUMNS + 1} columns; the limit is 64"):
        build_table(wide)
    long = [["a", "y"]] + [[i, i % 2] for i in range(MAX_ROWS + 1)]
    with pytest.raises(TableError, match="has 10,001 data rows; the limit is 10,000"):
        build_table(long)
    with pytest.raises(TableError, match="the limit is 5 MiB"):
        parse_csv(b"a,y\n" + b"1,0\n" * (MAX_BYTES // 4 + 1))
    many = [["a", "y"]] + [[i, f"k{i}"] for i in range(17)]
    with pytest.raises(TableError, match="has 17 classes; the limit is 16"):
        build_table(many, task="classification")


def test_drawn_sets_stay_on_the_output_area():
    rows = [["x1", "x2", "t"], [1, 2, 0.5], [7, 0, 0.1], [0, 0, 0.2], [1, 1, -0.3]]
    with pytest.raises(TableError, match=r"row 3: drawn points must lie within \[-6, 6\]"):
        build_table(rows, task="regression", kind="drawn")


@pytest.mark.parametrize("name", ["", "  ", "<b>x</b>", "a" * 65, "-lead", "Spiral"])
def test_names_are_plain_and_not_built_in(name):
    with pytest.raises(TableError):
        check_name(name)
