"""Read CSV data and shape it for a model: columns matched by name, dtypes as the model expects.

Everything a user can get wrong about a data file is checked here, before the model is called, so
that a bad file ends in a one-line error naming the column rather than in the model's traceback.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xai_cli.errors import BadInput
from xai_cli.model import LoadedModel

CSV_HINT = "DATA must be a comma-separated file with a header line"


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

    def __len__(self) -> int:
        return len(self.features)

    def slice(self, start: int, stop: int) -> ModelRows:
        return ModelRows(
            features=self.features.iloc[start:stop],
            ids=self.ids[start:stop],
            row_numbers=self.row_numbers[start:stop],
            target=None if self.target is None else self.target.iloc[start:stop],
        )

    def chunks(self, size: int) -> Iterator[ModelRows]:
        for start in range(0, len(self), size):
            yield self.slice(start, start + size)


def read_table(source: str, *, what: str = "DATA") -> Table:
    """Read a CSV file, or standard input for ``-``; spreadsheet quirks (BOM, CRLF) read the same."""
    raw = _read_bytes(source, what)
    if not raw.strip():
        raise BadInput(f"{what} {source} is empty", hint=CSV_HINT)
    if b"\x00" in raw[:4096]:
        raise BadInput(f"{what} {source} is not a text CSV file (it holds binary bytes)", hint=CSV_HINT)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    header = next(csv.reader(io.StringIO(text)), [])
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise BadInput(
            f"{what} {source} has duplicated column names: {', '.join(duplicated)}",
            hint="give every column a unique name",
        )
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot read {what} {source} as CSV: {first_line}", hint=CSV_HINT) from exc
    if frame.shape[1] == 0:
        raise BadInput(f"{what} {source} has no columns", hint=CSV_HINT)
    frame.columns = [str(c).strip() for c in frame.columns]
    return Table(frame=frame, path=source, sha256=hashlib.sha256(raw).hexdigest())


def _read_bytes(source: str, what: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as handle:
            return handle.read()
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
) -> ModelRows:
    """Match a table's columns to the model's features and cast them to the model's dtypes."""
    frame = table.frame
    for option, column in (("--target", target), ("--id-col", id_col)):
        if column is not None and column not in frame.columns and (option == "--id-col" or require_target):
            raise BadInput(
                f"{option} column {column!r} is not in {what} {table.path}",
                hint=f"columns are: {_preview(frame.columns)}",
            )
    reserved = {c for c in (target, id_col) if c is not None}
    warnings: list[str] = []
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
        features = frame[usable].set_axis(model.feature_names, axis=1)
    if len(features) == 0:
        raise BadInput(f"{what} {table.path} has a header but no rows", hint="add at least one data row")
    features, cast_warnings = cast_for_model(features, model, what=what)
    warnings.extend(cast_warnings)
    ids = [str(v) for v in frame[id_col].tolist()] if id_col else [str(i) for i in range(len(frame))]
    labels = frame[target] if target is not None and target in frame.columns else None
    return ModelRows(features, ids, list(range(len(frame))), labels, warnings)


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
            categorical, unseen = _as_training_categories(values, kind.categories)
            if unseen:
                warnings.append(
                    f"column {name}: values the model never saw were treated as missing: {_preview(unseen)}"
                )
            columns[name] = categorical
        else:
            columns[name] = _as_strings(values)
    return pd.DataFrame(columns, index=features.index), warnings


def _as_numeric(values: pd.Series, name: str, what: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() & values.notna()]
    if len(bad):
        raise BadInput(
            f"column {name} in {what} must be numeric, but row {bad.index[0]} holds {str(bad.iloc[0])!r}",
            hint="the model takes this column as numbers: fix the cell, or leave it empty for a missing value",
        )
    return numbers.astype(float)


def _as_strings(values: pd.Series) -> pd.Series:
    """Categories as the strings the encoder learned; empty cells stay missing."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        as_int = values.dropna()
        if len(as_int) and (as_int == as_int.round()).all():
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
