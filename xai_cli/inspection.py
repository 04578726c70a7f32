"""What xai sees in a model file (and a DATA file beside it), without explaining anything.

The safety scan always comes first and its verdict is part of the answer: a file the scan refuses
is never loaded (unless the user trusts it), so inspecting a hostile pickle is safe. A loaded model
is described as every command sees it: task, classes, the features it expects and how each is
typed, the scikit-learn version it was saved with, and which explanation methods apply to it (and
which one ``--method auto`` picks). With DATA, the columns are checked against the model the way
every command checks them, so a missing column shows here before a long run stops on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from xai_cli import __version__
from xai_cli.errors import BadInput, UnsafeModel, XaiError
from xai_cli.explanation import SCHEMA_VERSION, json_value
from xai_cli.model import LoadedModel, file_sha256, load_model

# The pandas dtype each kind of column reaches the model with (see data.cast_for_model).
DTYPE_OF_KIND = {"numeric": "float64", "categorical": "object", "category": "category"}


@dataclass(frozen=True)
class MethodCheck:
    """Whether one explanation method applies, in the output space it would explain by default."""

    name: str
    option: str
    output: str
    reason: str | None
    needs_background: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "option": self.option,
            "applies": self.reason is None,
            "reason": self.reason,
            "output": self.output,
            "needs_background": self.needs_background,
        }


@dataclass
class ColumnCheck:
    """DATA's columns against the model's features.

    ``missing`` are features DATA lacks; ``extra`` are DATA columns the model ignores; ``problem``
    is the first cell the model could not take (a word in a numeric column, say).
    """

    path: str
    sha256: str
    rows: int
    matched: list[str]
    missing: list[str]
    extra: list[str]
    problem: str | None = None
    problem_hint: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.missing and self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "rows": self.rows,
            "matched": self.matched,
            "missing": self.missing,
            "extra": self.extra,
            "problem": self.problem,
        }


@dataclass
class Inspection:
    """Everything ``xai inspect`` reports. ``model`` is ``None`` when the scan refused the file."""

    path: str
    sha256: str
    safety: dict[str, Any]
    model: LoadedModel | None = None
    saved_sklearn: str | None = None
    installed_sklearn: str | None = None
    methods: list[MethodCheck] = field(default_factory=list)
    auto: MethodCheck | None = None
    columns: ColumnCheck | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """Whether the file was left unloaded because the safety scan refused it."""
        return self.model is None

    @property
    def sklearn_mismatch(self) -> bool:
        return self.saved_sklearn is not None and self.saved_sklearn != self.installed_sklearn

    def blocking_error(self) -> XaiError | None:
        """The error the run must end with after its report: the scan's refusal (exit 3), or DATA
        the model cannot take (exit 2); ``None`` when neither."""
        if self.refused:
            return UnsafeModel(
                f"the safety scan refused {self.path}: {_refusal(self.safety)}",
                hint=f"nothing was loaded; {self.safety['hint']}",
                refused=self.safety["refused"],
            )
        if self.columns is not None and self.columns.missing:
            return BadInput(
                f"DATA {self.columns.path} lacks {len(self.columns.missing)} column(s) the model needs: "
                f"{', '.join(self.columns.missing)}",
                hint="add the columns to DATA (names must match the model's features exactly)",
            )
        if self.columns is not None and self.columns.problem is not None:
            return BadInput(
                self.columns.problem, hint=self.columns.problem_hint or "fix the cell, or leave it empty for a missing value"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": "inspection",
            "tool": {"name": "xai-cli", "version": __version__},
            "model": {"path": self.path, "sha256": self.sha256, "loaded": self.model is not None},
            "safety": json_value(self.safety),
        }
        if self.model is not None:
            document["model"].update(_describe(self.model))
            document["sklearn"] = {
                "saved_with": self.saved_sklearn,
                "installed": self.installed_sklearn,
                # Unknown (no scikit-learn object in the file carries a stamp) is not "matches".
                "matches": None if self.saved_sklearn is None else not self.sklearn_mismatch,
            }
            document["methods"] = [check.to_dict() for check in self.methods]
            document["auto"] = {"method": self.auto.name, "output": self.auto.output} if self.auto else None
        document["data"] = self.columns.to_dict() if self.columns is not None else None
        document["warnings"] = list(self.warnings)
        return document


def inspect_model(
    path: str, data_path: str | None = None, *, trust: bool = False, allow: Sequence[str] = ()
) -> Inspection:
    """Scan, then (unless refused) load and describe the model at ``path``, and check DATA against it.

    A file the scan refuses is not loaded unless ``trust``; the verdict is reported either way.
    """
    from xai_cli.safety import scan_model_file

    verdict = scan_model_file(path, allow=allow)
    inspection = Inspection(path=path, sha256=file_sha256(path), safety=_verdict(verdict, trusted=trust))
    if not verdict.safe:
        if not trust:
            return inspection
        inspection.warnings.append(
            f"the safety scan refused this file ({_refusal(inspection.safety)}); it was loaded anyway because of --trust"
        )
    inspection.installed_sklearn = _installed_sklearn()
    model = load_model(path, trust=trust, allow=allow)
    inspection.saved_sklearn = model.saved_sklearn_version
    inspection.model = model
    mismatch = model.sklearn_version_warning()
    if mismatch:
        inspection.warnings.append(mismatch)
    inspection.warnings.extend(model.notes)
    inspection.methods, inspection.auto = method_checks(model)
    if data_path is not None:
        inspection.columns = check_columns(model, data_path)
        inspection.warnings.extend(inspection.columns.warnings)
    return inspection


def method_checks(model: LoadedModel) -> tuple[list[MethodCheck], MethodCheck]:
    """Whether each registered method applies (in its default output space), and what ``auto`` picks."""
    from xai_cli.methods import METHODS, NEEDS_BACKGROUND, auto_method
    from xai_cli.methods.base import Settings

    def check(option: str, module: Any) -> MethodCheck:
        settings = Settings(output=model.default_output(option))
        return MethodCheck(
            name=module.NAME,
            option=option,
            output=settings.output,
            reason=module.applies(model, settings),
            needs_background=module.NAME in NEEDS_BACKGROUND,
        )

    checks = [check(option, module) for option, module in METHODS.items()]
    picked = auto_method(model, Settings(output=model.default_output("auto")))
    return checks, check("auto", picked)


def check_columns(model: LoadedModel, data_path: str) -> ColumnCheck:
    """DATA's columns matched to the model's features, and whether every cell suits its column.

    A model without feature names takes DATA's first columns in order, as the other commands do
    when DATA has no ``--target`` or ``--id-col``.
    """
    from xai_cli.data import cast_for_model, columns_read_as_text, read_table

    table = read_table(data_path, text_columns=columns_read_as_text(model))
    columns = [str(c) for c in table.frame.columns]
    features = list(model.feature_names)
    if model.has_feature_names:
        matched = [name for name in features if name in columns]
        missing = [name for name in features if name not in columns]
        extra = [name for name in columns if name not in features]
        taken = table.frame[matched]
    else:
        matched = columns[: len(features)]
        missing = features[len(columns) :]
        extra = columns[len(features) :]
        taken = table.frame[matched].set_axis(features[: len(matched)], axis=1)
    check = ColumnCheck(table.path, table.sha256, len(table.frame), matched, missing, extra)
    if extra:
        check.warnings.append(f"DATA columns not used by the model (ignored): {', '.join(extra)}")
    if not missing:
        try:
            check.warnings.extend(cast_for_model(taken, model)[1])
        except BadInput as error:
            check.problem = error.message
            check.problem_hint = error.hint
    return check


def _describe(model: LoadedModel) -> dict[str, Any]:
    return {
        "type": model.type_name,
        "final_type": model.final_type_name,
        "task": model.task,
        "classes": model.classes,
        "family": model.family,
        "boosted": model.boosted,
        "feature_names_known": model.has_feature_names,
        "features": [
            {
                "name": name,
                "kind": model.column_kinds[name].kind,
                "dtype": DTYPE_OF_KIND[model.column_kinds[name].kind],
                "categories": json_value(model.column_kinds[name].categories),
            }
            for name in model.feature_names
        ],
    }


def _verdict(verdict: Any, *, trusted: bool) -> dict[str, Any]:
    return {
        "safe": bool(verdict.safe),
        "refused": list(verdict.refused),
        "imports": list(verdict.imports),
        "container": verdict.container,
        "problem": verdict.problem,
        "damaged": bool(verdict.damaged),
        "hint": verdict.hint,
        "trusted": trusted,
    }


def _refusal(safety: dict[str, Any]) -> str:
    """What the scan refused, as the file spells it (``posix.system``), or the scan's problem."""
    if safety["refused"]:
        return f"it imports {', '.join(safety['refused'])}"
    return safety["problem"] or "the file is not a model the scan can read"


def _installed_sklearn() -> str | None:
    try:
        return metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        return None
