"""Plain records of an explanation run, and their JSON / CSV forms.

These dataclasses are the one shape every method returns and every writer (JSON, CSV, plots,
report, terminal) reads, so a new method or a new output never needs to know about the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
CSV_HEADER = ("row", "id", "method", "class", "feature", "value", "attribution")


@dataclass(frozen=True)
class Attribution:
    """One feature's share of a prediction.

    ``value`` is the cell as read from the CSV (a number, a string, or ``None`` for an empty cell).
    ``rule`` is LIME's condition on the feature; ``std_error`` the sampling error of a sampled
    Kernel SHAP value. Both are ``None`` where they do not apply.
    """

    feature: str
    value: Any
    attribution: float
    rule: str | None = None
    std_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature": self.feature,
            "value": json_value(self.value),
            "attribution": float(self.attribution),
        }
        if self.rule is not None:
            out["rule"] = self.rule
        if self.std_error is not None:
            out["std_error"] = float(self.std_error)
        return out


@dataclass
class Explanation:
    """The attributions of one method for one row and one class.

    For SHAP methods ``base_value + sum(attributions) == prediction`` up to
    ``quality["additivity_gap"]``; for LIME ``base_value`` is the local model's intercept.
    ``class_label`` is the class as a string, ``None`` for regression.
    """

    row: int
    id: str
    method: str
    class_label: str | None
    prediction: float
    base_value: float
    attributions: list[Attribution]
    quality: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attributions = sorted(self.attributions, key=lambda a: -abs(a.attribution))

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "id": self.id,
            "method": self.method,
            "class": self.class_label,
            "prediction": float(self.prediction),
            "base_value": float(self.base_value),
            "attributions": [a.to_dict() for a in self.attributions],
            "quality": json_value(self.quality),
        }

    def csv_rows(self) -> list[tuple]:
        """Long-format lines ``row,id,method,class,feature,value,attribution``."""
        cls = "" if self.class_label is None else self.class_label
        return [
            (self.row, self.id, self.method, cls, a.feature, csv_cell(a.value), repr(float(a.attribution)))
            for a in self.attributions
        ]


@dataclass
class ExplanationDocument:
    """Everything ``attributions.json`` holds: run metadata plus the explanations."""

    created_at: str
    tool_version: str
    model: dict[str, Any]
    data: dict[str, Any]
    background: dict[str, Any] | None
    versions: dict[str, str]
    params: dict[str, Any]
    explanations: list[Explanation]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "explanation",
            "tool": {"name": "xai-cli", "version": self.tool_version},
            "created_at": self.created_at,
            "model": json_value(self.model),
            "data": json_value(self.data),
            "background": json_value(self.background),
            "versions": dict(self.versions),
            "params": json_value(self.params),
            "explanations": [e.to_dict() for e in self.explanations],
            "warnings": list(self.warnings),
        }


class AttributionSummary:
    """Running mean |attribution| per (method, class) and feature, and the rows seen.

    Accumulated one explanation at a time, so a summary of a million rows never holds them.
    """

    def __init__(self, explanations: Iterable[Explanation] = ()):
        self._sums: dict[tuple[str, str | None], dict[str, float]] = {}
        self._counts: dict[tuple[str, str | None], int] = {}
        self._rows: set[int] = set()
        # Per method: explanations, how many are exact, how many stopped at the sample budget.
        self.receipts: dict[str, dict[str, int]] = {}
        for explanation in explanations:
            self.add(explanation)

    def add(self, explanation: Explanation) -> None:
        group = (explanation.method, explanation.class_label)
        totals = self._sums.setdefault(group, {})
        self._counts[group] = self._counts.get(group, 0) + 1
        self._rows.add(explanation.row)
        tally = self.receipts.setdefault(explanation.method, {"explanations": 0, "exact": 0, "budget_exhausted": 0})
        tally["explanations"] += 1
        tally["exact"] += bool(explanation.quality.get("exact"))
        tally["budget_exhausted"] += bool(explanation.quality.get("budget_exhausted"))
        for attribution in explanation.attributions:
            totals[attribution.feature] = totals.get(attribution.feature, 0.0) + abs(float(attribution.attribution))

    @property
    def rows(self) -> int:
        return len(self._rows)

    def counts(self) -> dict[tuple[str, str | None], int]:
        """How many explanations each (method, class label) mean is over: the summary bar needs
        sums, a mean times its count, to stack classes that explain different rows."""
        return dict(self._counts)

    def means(self) -> dict[tuple[str, str | None], dict[str, float]]:
        """Mean |attribution| per feature for each (method, class label), features in first-seen order."""
        return {group: {f: s / self._counts[group] for f, s in totals.items()} for group, totals in self._sums.items()}


def json_value(value: Any) -> Any:
    """Return ``value`` with numpy scalars, NaN and nested containers made JSON-safe.

    NaN and infinities become ``None``: JSON has no NaN, and an empty CSV cell reads as NaN.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        return json_value(value.tolist())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and "int" in type(value).__name__ else number


def csv_cell(value: Any) -> str:
    """The text of a feature value in the CSV: empty for a missing value."""
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
