"""Read CSV data and shape it for a model: columns matched by name, dtypes as the model expects.

Everything a user can get wrong about a data file is checked here, before the model is called, so
that a bad file ends in a one-line error naming the column rather than in the model's traceback.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from xai_cli.errors import BadInput
from xai_cli.model import ColumnKind, LoadedModel

CSV_HINT = "DATA must be a comma-separated file with a header line"
# The cells pandas reads as missing ("", "NA", "null", "NaN"...): numeric columns keep reading them so.
MISSING_TEXT = frozenset(STR_NA_VALUES)


@dataclass
class Table:
    """A CSV as read: the frame, where it came from, and the SHA-256 of its bytes."""

    frame: pd.DataFrame
    path: str
    sha256: str


@dataclass
class ModelRows:
    """Rows ready for the model: features in the model's order and dtypes, ids, target, warnings.

    ``row_numbers`` are the 0-based positions in DATA, which name the rows in every output.
    """

    features: pd.DataFrame
    ids: list[str]
    row_numbers: list[int]
    target: pd.Series | None
    warnings: list[str] = field(default_factory=list)
    # The feature cells as read, where the model's dtypes lose some (a category the model never saw
    # is missing for the model); ``None`` when ``features`` shows every cell as read.
    values: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.features)

    def slice(self, start: int, stop: int) -> ModelRows:
        return ModelRows(
            features=self.features.iloc[start:stop],
            ids=self.ids[start:stop],
            row_numbers=self.row_numbers[start:stop],
            target=None if self.target is None else self.target.iloc[start:stop],
            values=None if self.values is None else self.values.iloc[start:stop],
        )

    def chunks(self, size: int) -> Iterator[ModelRows]:
        for start in range(0, len(self), size):
            yield self.slice(start, start + size)


READ_CHUNK_ROWS = 10_000
PEEK_BYTES = 1 << 16


class _HashingReader(io.RawIOBase):
    """A binary stream that feeds every byte it reads to a SHA-256, so DATA is hashed as it streams."""

    def __init__(self, raw: Any, first: bytes):
        self._raw, self._pending = raw, first
        self.digest = hashlib.sha256(first)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            size = min(len(buffer), len(self._pending))
            buffer[:size], self._pending = self._pending[:size], self._pending[size:]
            return size
        # read1: what the pipe holds now, so rows stream through as they arrive on standard input
        data = self._raw.read1(len(buffer)) if hasattr(self._raw, "read1") else self._raw.read(len(buffer))
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


class _TextStream:
    """Text from a binary stream, ``read(n)`` returning what has arrived rather than waiting for n.

    ``io.TextIOWrapper.read(n)`` waits for n characters, so pandas' chunked reader would sit on a
    pipe until it closed; with this one the first chunk is parsed as soon as its rows are there.
    """

    def __init__(self, binary: io.BufferedReader, encoding: str):
        self._binary = binary
        self._decoder = codecs.getincrementaldecoder(encoding)()

    def read(self, size: int = -1) -> str:
        if size is None or size < 0:
            return self._decoder.decode(self._binary.read(), final=True)
        while True:
            data = self._binary.read1(size)
            text = self._decoder.decode(data, final=not data)
            if text or not data:
                return text

    def __iter__(self) -> Iterator[str]:
        pending = ""
        while block := self.read(PEEK_BYTES):
            pending += block
            *lines, pending = pending.splitlines(keepends=True) or [""]
            if pending.endswith(("\n", "\r")):
                lines, pending = [*lines, pending], ""
            yield from lines
        if pending:
            yield pending


@dataclass
class TableStream:
    """A CSV read lazily, ``READ_CHUNK_ROWS`` rows at a time; ``sha256`` is known once it is exhausted."""

    path: str
    chunks: Iterator[pd.DataFrame]
    reader: _HashingReader

    @property
    def sha256(self) -> str:
        return self.reader.digest.hexdigest()


def open_table(
    source: str, *, what: str = "DATA", chunk_rows: int = READ_CHUNK_ROWS, text_columns: Collection[str] = ()
) -> TableStream:
    """Open a CSV file, or standard input for ``-``, to read in chunks.

    Spreadsheet quirks (UTF-8 BOM, CRLF, quoted fields) read the same as plain CSV; a file that is
    not UTF-8 is read as Latin-1. Problems visible in the first bytes are raised at once.
    ``text_columns`` (see :func:`columns_read_as_text`) are read as written: never as numbers, and
    only an empty cell is missing; pandas infers every other column's dtype.
    """
    handle = _open_binary(source, what)
    try:
        first = handle.read(PEEK_BYTES)
    except OSError as exc:  # opened, but reading fails (EIO, a network share gone...)
        raise BadInput(
            f"cannot read {what} {source}: {exc.strerror or exc}", hint="check the file and the disk it is on"
        ) from None
    if not first.strip():
        raise BadInput(f"{what} {source} is empty", hint=CSV_HINT)
    if b"\x00" in first[:4096]:
        raise BadInput(f"{what} {source} is not a text CSV file (it holds binary bytes)", hint=CSV_HINT)
    encoding = "utf-8-sig" if _decodes_as_utf8(first) else "latin-1"
    try:  # newline="": the csv module reads a bare \r itself (a StringIO would split it away)
        header = next(csv.reader(io.StringIO(first.decode(encoding, errors="replace"), newline="")), [])
    except csv.Error as exc:
        raise BadInput(f"cannot read {what} {source} as CSV: {exc}", hint=CSV_HINT) from None
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise BadInput(
            f"{what} {source} has duplicated column names: {', '.join(duplicated)}",
            hint="give every column a unique name",
        )
    reader = _HashingReader(handle, first)
    text = _TextStream(io.BufferedReader(reader, buffer_size=PEEK_BYTES), encoding)
    options = _text_options(header, text_columns) if _whole_line(first) else {}
    return TableStream(path=source, chunks=_csv_chunks(text, source, what, chunk_rows, options), reader=reader)


def _whole_line(data: bytes) -> bool:
    """Whether the peeked bytes hold the header line to its end (so that it names every column)."""
    return b"\n" in data or b"\r" in data


def _text_options(header: list[str], text_columns: Collection[str]) -> dict[str, Any]:
    """``read_csv`` options that keep ``text_columns`` as written, and every other column as pandas reads it.

    Keyed by position: pandas names columns before they are stripped, and names empty headers itself.
    """
    wanted = set(text_columns)
    as_text = {position for position, name in enumerate(header) if name.strip() in wanted}
    if not as_text:
        return {}
    return {
        "dtype": dict.fromkeys(as_text, str),
        "keep_default_na": False,
        "na_values": {position: [""] if position in as_text else MISSING_TEXT for position in range(len(header))},
    }


def _csv_chunks(text: Any, source: str, what: str, chunk_rows: int, options: dict[str, Any]) -> Iterator[pd.DataFrame]:
    try:
        for frame in pd.read_csv(text, chunksize=chunk_rows, **options):
            if frame.shape[1] == 0:
                raise BadInput(f"{what} {source} has no columns", hint=CSV_HINT)
            frame.columns = [str(c).strip() for c in frame.columns]
            yield frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot read {what} {source} as CSV: {first_line}", hint=CSV_HINT) from exc
    except OSError as exc:  # the file or the pipe failed while it was being read
        raise BadInput(
            f"cannot read {what} {source}: {exc.strerror or exc}", hint="check the file and the disk it is on"
        ) from None


def _decodes_as_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8, allowing a character cut at the end of the peeked block."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3


def read_table(source: str, *, what: str = "DATA", text_columns: Collection[str] = ()) -> Table:
    """Read a whole CSV file, or standard input for ``-`` (see :func:`open_table`)."""
    stream = open_table(source, what=what, text_columns=text_columns)
    frames = list(stream.chunks)
    if not frames:
        raise BadInput(f"{what} {source} has a header but no rows", hint="add at least one data row")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Table(frame=frame, path=source, sha256=stream.sha256)


def columns_read_as_text(model: LoadedModel, *, id_col: str | None = None) -> list[str]:
    """The columns to read as written for ``model``: those it takes as strings, and ``id_col``.

    Read by pandas, a zip code "00501" would become the number 501 and a category "NA" a missing
    value; :func:`cast_for_model` decides against the model's own categories whether "NA" is missing.
    A model without feature names takes columns by position, so none of its columns is named here.
    """
    columns = (
        [name for name, kind in model.column_kinds.items() if _takes_text(kind)] if model.has_feature_names else []
    )
    if id_col is not None and id_col not in model.column_kinds:
        columns.append(id_col)  # a name: "007" stays "007"
    return columns


def _takes_text(kind: ColumnKind) -> bool:
    if kind.kind == "category":  # pandas categories: as text only when the model's are strings
        return kind.categories is not None and all(isinstance(c, str) for c in kind.categories)
    return kind.kind == "categorical"


def _open_binary(source: str, what: str) -> Any:
    if source == "-":
        return sys.stdin.buffer
    try:
        return open(source, "rb")  # noqa: SIM115 - closed when the stream is exhausted or collected
    except FileNotFoundError:
        raise BadInput(
            f"{what} file not found: {source}", hint="check the path, or pass - to read standard input"
        ) from None
    except IsADirectoryError:
        raise BadInput(f"{what} {source} is a folder, not a CSV file", hint=CSV_HINT) from None
    except OSError as exc:
        raise BadInput(f"cannot read {what} {source}: {exc.strerror}", hint="check the file's permissions") from None


def match_rows(
    table: Table,
    model: LoadedModel,
    *,
    target: str | None = None,
    id_col: str | None = None,
    what: str = "DATA",
    require_target: bool = False,
    ignored: tuple[str, ...] = (),
) -> ModelRows:
    """Match a table's columns to the model's features and cast them to the model's dtypes."""
    return match_frame(
        table.frame,
        model,
        path=table.path,
        target=target,
        id_col=id_col,
        what=what,
        require_target=require_target,
        ignored=ignored,
    )


def match_frame(
    frame: pd.DataFrame,
    model: LoadedModel,
    *,
    path: str,
    target: str | None = None,
    id_col: str | None = None,
    what: str = "DATA",
    require_target: bool = False,
    first_row: int = 0,
    ignored: tuple[str, ...] = (),
) -> ModelRows:
    """:func:`match_rows` for one chunk of a table whose first row is row ``first_row`` of the file.

    ``ignored`` columns are dropped without a warning (DATA's ``--id-col`` in a background file).
    """
    table = Table(frame=frame, path=path, sha256="")
    for option, column in (("--target", target), ("--id-col", id_col)):
        if column is not None and column not in frame.columns and (option == "--id-col" or require_target):
            raise BadInput(
                f"{option} column {column!r} is not in {what} {table.path}",
                hint=f"columns are: {_preview(frame.columns)}",
            )
    reserved = {c for c in (target, id_col, *ignored) if c is not None}
    warnings: list[str] = []
    if target is not None and target not in frame.columns:
        warnings.append(f"--target column {target!r} is not in {what} {table.path}: no labels, nothing dropped")
    if model.has_feature_names:
        missing = [name for name in model.feature_names if name not in frame.columns]
        if missing:
            raise BadInput(
                f"{what} {table.path} lacks {len(missing)} column(s) the model needs: {', '.join(missing)}",
                hint=_missing_hint(frame),
            )
        extra = [c for c in frame.columns if c not in model.feature_names and c not in reserved]
        if extra:
            warnings.append(f"{what} columns not used by the model (ignored): {', '.join(extra)}")
        features = frame[model.feature_names]
    else:
        usable = [c for c in frame.columns if c not in reserved]
        if len(usable) != len(model.feature_names):
            raise BadInput(
                f"the model takes {len(model.feature_names)} unnamed columns, "
                f"{what} {table.path} has {len(usable)} (less --target and --id-col)",
                hint="the model has no feature names, so columns are taken in order: drop or add columns to match",
            )
        if what == "DATA":
            model.call_columns([str(c) for c in usable])
        features = frame[usable].set_axis(model.feature_names, axis=1)
    if len(features) == 0:
        raise BadInput(f"{what} {table.path} has a header but no rows", hint="add at least one data row")
    cells = features
    features, cast_warnings = cast_for_model(cells, model, what=what)
    warnings.extend(cast_warnings)
    row_numbers = list(range(first_row, first_row + len(frame)))
    ids = [_id_text(v) for v in frame[id_col].tolist()] if id_col else [str(i) for i in row_numbers]
    labels = frame[target] if target is not None and target in frame.columns else None
    return ModelRows(features, ids, row_numbers, labels, warnings, _values_as_read(cells, features, model))


def _id_text(value: Any) -> str:
    """A row's id: the cell's text, ``""`` for an empty cell."""
    return "" if pd.isna(value) else str(value)


def _values_as_read(cells: pd.DataFrame, features: pd.DataFrame, model: LoadedModel) -> pd.DataFrame | None:
    """``features`` with the cells the model's dtypes lost put back, or ``None`` when none are lost.

    A ``category`` column holds only the training categories, so a value the model never saw is
    missing there; the output still shows the cell as read.
    """
    lost = {}
    for name in features.columns:
        kind = model.column_kinds.get(name)
        if kind is not None and kind.kind == "category":
            read = _missing_unless_known(cells[name], kind.categories)
            if (features[name].isna() & read.notna()).any():
                lost[name] = read.astype(object)
    return features.assign(**lost) if lost else None


def cast_for_model(features: pd.DataFrame, model: LoadedModel, *, what: str = "DATA") -> tuple[pd.DataFrame, list]:
    """Give each column the dtype the model was trained with; name the column of any bad cell."""
    columns: dict[str, Any] = {}
    warnings: list[str] = []
    for name in features.columns:
        kind = model.column_kinds.get(name)
        values = features[name]
        if kind is None or kind.kind == "numeric":
            columns[name] = _as_numeric(values, name, what)
        elif kind.kind == "category":
            categorical, unseen = _as_training_categories(
                _missing_unless_known(values, kind.categories), kind.categories
            )
            if unseen:
                warnings.append(
                    f"column {name}: values the model never saw were treated as missing: {_preview(unseen)}"
                )
            columns[name] = categorical
        else:
            columns[name] = _as_strings(_missing_unless_known(values, kind.categories))
            if kind.categories is not None:
                warnings.extend(_unseen_categories(columns[name], name, kind, what))
    return pd.DataFrame(columns, index=features.index), warnings


def _unseen_categories(values: pd.Series, name: str, kind: ColumnKind, what: str) -> list[str]:
    """Values an encoder never saw: stop where it would raise, otherwise name them in the warnings.

    Checked here so that an encoder fitted with ``handle_unknown="error"`` gives exit 2 naming the
    column, not the model's own error halfway through a run.
    """
    known = set(kind.categories or ())
    unseen = sorted({v for v in values.dropna().unique() if v not in known})
    if not unseen:
        return []
    if kind.unknown == "error":
        raise BadInput(
            f"column {name} in {what} holds {_preview(unseen)}, which the model's encoder never saw and refuses "
            f"(handle_unknown='error')",
            hint=f"use one of the categories the model was trained on: {_preview(sorted(known))}",
        )
    handling = f" (handle_unknown={kind.unknown!r})" if kind.unknown else ""
    return [
        f"column {name}: values the model's encoder never saw in training, encoded as unknown{handling}: {_preview(unseen)}"
    ]


def _as_numeric(values: pd.Series, name: str, what: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if len(bad):
            raise BadInput(
                f"column {name} in {what} must be numeric, but row {bad.index[0]} holds {str(bad.iloc[0])!r}",
                hint="the model takes this column as numbers: fix the cell, or leave it empty for a missing value",
            )
        numbers = numbers.astype(float)
    infinite = numbers[np.isinf(numbers)]
    if len(infinite):
        raise BadInput(
            f"column {name} in {what} must hold finite numbers, but row {infinite.index[0]} holds "
            f"{str(values.loc[infinite.index[0]])!r}",
            hint="fix the cell (numbers beyond ±1.8e308 are infinite), or leave it empty for a missing value",
        )
    return numbers


def _missing_unless_known(values: pd.Series, known: tuple | None) -> pd.Series:
    """Text cells such as "NA" or "null" made missing, as pandas reads them, unless the model knows them as categories."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values
    missing = MISSING_TEXT.difference(str(c) for c in known or ())
    return values.where(~values.isin(missing))


def _as_strings(values: pd.Series) -> pd.Series:
    """Categories as the strings the encoder learned; empty cells stay missing."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        as_int = values.dropna()
        # 3.0 was written "3"; only integers that int64 holds exactly (a float beyond 2**53 is not
        # one number, and astype("Int64") refuses those beyond 2**63) are shown without ".0".
        if len(as_int) and (as_int == as_int.round()).all() and (as_int.abs() < 2**53).all():
            values = values.astype("Int64")
    out = values.astype(object).where(values.notna(), np.nan)
    return out.map(lambda v: v if isinstance(v, float) else str(v)).astype(object)


def _as_training_categories(values: pd.Series, categories: tuple | None) -> tuple[pd.Series, list]:
    if categories is None:
        return values.astype("category"), []
    lookup = {str(c): c for c in categories}
    present = values.dropna().astype(str)
    unseen = sorted(set(present) - set(lookup))
    mapped = values.map(lambda v: lookup.get(str(v), np.nan) if pd.notna(v) else np.nan)
    return pd.Series(pd.Categorical(mapped, categories=list(categories)), index=values.index), unseen


def _missing_hint(frame: pd.DataFrame) -> str:
    if frame.shape[1] == 1 and any(sep in str(frame.columns[0]) for sep in (";", "\t", "|")):
        return f"the header looks like one column {str(frame.columns[0])[:60]!r}: is the file comma-separated?"
    return f"{len(frame.columns)} columns found: {_preview(frame.columns)}"


def _preview(items: Any, limit: int = 8) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def display_value(value: Any) -> Any:
    """A cell as the user wrote it: number, string, or ``None`` for an empty cell."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def sample_background(rows: ModelRows | pd.DataFrame, *, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows drawn without replacement, the same for the same seed."""
    frame = rows.features if isinstance(rows, ModelRows) else rows
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    rng = np.random.default_rng([seed, 0xBAC6])
    chosen = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[chosen].reset_index(drop=True)
