"""The ``explain`` job as a library: plan the methods, pick the classes, explain rows in chunks.

:func:`prepare` does every check that can fail on the user's input before any explanation starts;
:func:`explain_rows` then yields explanations batch by batch, in row order whatever the backend, as
chunks of DATA stream in, so the CLI can write JSON lines and show progress in constant memory;
:func:`build_document` assembles ``attributions.json``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from xai_cli import __version__
from xai_cli.backends import LocalBackend
from xai_cli.data import ModelRows, sample_background
from xai_cli.errors import BadInput
from xai_cli.explanation import AttributionSummary, Explanation, ExplanationDocument
from xai_cli.methods import NEEDS_BACKGROUND, plan
from xai_cli.methods.base import MAX_BACKGROUND_ROWS, Batch, Settings
from xai_cli.model import LoadedModel, ModelOutput
from xai_cli.quality import add_deletion_checks, add_method_agreement

MIN_DATA_AS_BACKGROUND = 20
# Rows explained per batch: small enough that the first JSON lines come early, large enough that
# the model is called with thousands of synthetic rows at a time.
BATCH_ROWS = 32
# Quality thresholds above which an explanation is flagged in ``warnings``.
LIME_MIN_R2 = 0.5
ADDITIVITY_TOLERANCE = 1e-6


@dataclass
class ExplainPlan:
    """Everything decided before the first row is explained."""

    model: LoadedModel
    settings: Settings
    methods: list[ModuleType]
    output: ModelOutput
    background: pd.DataFrame | None
    background_info: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def prepare(
    model: LoadedModel,
    first_rows: ModelRows,
    *,
    method: str,
    settings: Settings,
    output_given: bool,
    background_rows: ModelRows | None,
    background_path: str | None,
) -> ExplainPlan:
    """Check the request against the model and decide methods, output space and background.

    ``first_rows`` is DATA's first chunk (``READ_CHUNK_ROWS`` rows at most): without
    ``background_rows`` it is the background when it has at least ``MIN_DATA_AS_BACKGROUND`` rows.
    """
    if not output_given:
        settings = Settings(**{**settings.__dict__, "output": model.default_output(method)})
    ignored: list[str] = []
    if not model.is_classifier:
        if output_given and settings.output == "probability":
            ignored.append("--output probability ignored: a regressor has no probabilities; its prediction is explained")
        settings = Settings(**{**settings.__dict__, "output": "raw"})
    methods, warnings = plan(model, method, settings)
    warnings = ignored + warnings
    output = model.output(settings.output)
    check_class_choice(model, output, settings.class_choice)

    source = background_rows
    if source is None and len(first_rows) >= MIN_DATA_AS_BACKGROUND:
        source = first_rows
    needs = sorted({m.NAME for m in methods} & NEEDS_BACKGROUND)
    if source is None and needs:
        raise BadInput(
            f"{', '.join(needs)} needs background rows, and DATA has only {len(first_rows)} (fewer than "
            f"{MIN_DATA_AS_BACKGROUND})",
            hint="pass --background with representative rows, e.g. the training CSV",
        )
    background = background_info = None
    if source is not None:
        background = sample_background(source, max_rows=MAX_BACKGROUND_ROWS, seed=settings.seed)
        background_info = {
            "path": background_path,
            "rows": len(background),
            "rows_available": len(source),
            "sampled": len(background) < len(source),
        }
    return ExplainPlan(model, settings, methods, output, background, background_info, warnings)


def check_class_choice(model: LoadedModel, output: ModelOutput, class_choice: str) -> None:
    """Exit 2 for a ``--class`` the model does not have."""
    if not model.is_classifier:
        if class_choice not in ("default", "predicted", "all"):
            raise BadInput(f"--class {class_choice} given, but the model is a regressor", hint="drop --class")
    elif class_choice not in ("default", "predicted", "all") and class_choice not in output.labels:
        raise BadInput(
            f"unknown --class {class_choice!r}",
            hint=f"classes are: {', '.join(map(str, output.labels))} (or predicted, all)",
        )


def choose_targets(
    model: LoadedModel, output: ModelOutput, predictions: np.ndarray, class_choice: str
) -> list[list[int]]:
    """Which output columns to explain for each row, from ``--class`` (already checked)."""
    n_rows = len(predictions)
    if not model.is_classifier:
        return [[0]] * n_rows
    if class_choice == "all":
        return [list(range(len(output.labels)))] * n_rows
    if class_choice == "default" and len(output.labels) == 2:
        return [[1]] * n_rows
    if class_choice in ("default", "predicted"):
        return [[int(i)] for i in np.argmax(predictions, axis=1)]
    return [[output.labels.index(class_choice)]] * n_rows


def explain_rows(
    explain_plan: ExplainPlan,
    row_chunks: Iterable[ModelRows],
    *,
    batch_rows: int = BATCH_ROWS,
    receipts: bool = True,
    backend: Any = None,
) -> Iterator[list[Explanation]]:
    """Explanations batch by batch, in row order, as ``row_chunks`` stream in.

    ``backend`` (default: this process, or ``n_jobs`` local processes) runs the batches.
    ``receipts=False`` leaves out the per-row deletion check and agreement (for global summaries
    such as mean |SHAP|, which report neither).
    """
    backend = backend or LocalBackend(explain_plan.settings.n_jobs)
    shared = (explain_plan.model, explain_plan.background, explain_plan.methods, explain_plan.settings, receipts)
    jobs = (
        (
            chunk.features.iloc[start : start + batch_rows],
            chunk.row_numbers[start : start + batch_rows],
            chunk.ids[start : start + batch_rows],
            None if chunk.values is None else chunk.values.iloc[start : start + batch_rows],
        )
        for chunk in row_chunks
        for start in range(0, len(chunk), batch_rows)
    )
    yield from backend.map_ordered(_run_batch, shared, jobs)


def _run_batch(
    model: LoadedModel,
    background: pd.DataFrame | None,
    methods: list[ModuleType],
    settings: Settings,
    receipts: bool,
    features: pd.DataFrame,
    row_numbers: list[int],
    ids: list[str],
    values: pd.DataFrame | None = None,
) -> list[Explanation]:
    """Explain one batch of rows with every planned method (runs in a worker for parallel backends).

    BLAS and OpenMP run one thread here whatever the backend: a matrix product split over a
    different number of threads can differ in its last bits, and the numbers must be the same for
    any ``--n-jobs`` or backend. Parallelism comes from running batches side by side instead.
    """
    from threadpoolctl import threadpool_limits

    # A fresh copy gives the batch one memory layout whether it arrived as a slice of a chunk or
    # pickled from another process: BLAS kernels for strided and contiguous inputs round differently.
    features = features.copy()
    with threadpool_limits(limits=1):
        return _explain_batch(model, background, methods, settings, receipts, features, row_numbers, ids, values)


def _explain_batch(
    model: LoadedModel,
    background: pd.DataFrame | None,
    methods: list[ModuleType],
    settings: Settings,
    receipts: bool,
    features: pd.DataFrame,
    row_numbers: list[int],
    ids: list[str],
    values: pd.DataFrame | None = None,
) -> list[Explanation]:
    output = model.output(settings.output)
    targets = choose_targets(model, output, output.predict(features), settings.class_choice)
    batch = Batch(features, row_numbers, ids, targets, values)
    explanations: list[Explanation] = []
    for module in methods:
        explanations.extend(module.explain(model, batch, background, settings=settings))
    if not receipts:
        return explanations
    if background is not None:
        add_deletion_checks(explanations, batch.features, batch.row_numbers, background, output, seed=settings.seed)
    if len(methods) > 1:
        add_method_agreement(explanations)
    return explanations


# Warnings of one kind shown one by one before the rest are counted in one line.
WARNINGS_PER_KIND = 20


class WarningLog:
    """Warnings in the order they came, at most ``WARNINGS_PER_KIND`` of a kind, the rest counted."""

    def __init__(self, warnings: Iterable[str] = ()):
        self._lines: list[str] = list(dict.fromkeys(warnings))
        self._shown: dict[str, int] = {}
        self._hidden: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        if self._shown.get(kind, 0) < WARNINGS_PER_KIND:
            self._shown[kind] = self._shown.get(kind, 0) + 1
            self._lines.append(message)
        else:
            self._hidden[kind] = self._hidden.get(kind, 0) + 1

    def extend(self, messages: Iterable[str]) -> None:
        for message in messages:
            if message not in self._lines:
                self._lines.append(message)

    def lines(self) -> list[str]:
        return self._lines + [f"... and {count} more: {kind}" for kind, count in self._hidden.items()]


def quality_warnings(explanation: Explanation) -> list[tuple[str, str]]:
    """Plain-language warnings, as ``(kind, message)``, for an explanation whose receipt is poor."""
    where = f"row {explanation.id} ({explanation.method}" + (
        f", class {explanation.class_label})" if explanation.class_label is not None else ")"
    )
    quality = explanation.quality
    found = []
    gap = quality.get("additivity_gap")
    if gap is not None and gap > ADDITIVITY_TOLERANCE * max(1.0, abs(explanation.prediction)):
        found.append(("additivity gap", f"{where}: attributions miss the prediction by {gap:.3g} (additivity gap)"))
    r2 = quality.get("r2")
    if r2 is not None and r2 < LIME_MIN_R2:
        found.append(("poor LIME fit", f"{where}: LIME's local model fits poorly (R² {r2:.2f} < {LIME_MIN_R2})"))
    noisy = [
        a.feature for a in explanation.attributions[:3] if a.std_error is not None and a.std_error > abs(a.attribution)
    ]
    if noisy:
        found.append(
            (
                "sampling error",
                f"{where}: sampling error exceeds the attribution of {', '.join(noisy)} (raise --nsamples)",
            )
        )
    for entry in quality.get("agreement", []):
        if entry["disagree"] and explanation.method < entry["with"]:
            rho = "n/a" if entry["spearman"] is None else f"{entry['spearman']:.2f}"
            found.append(
                (
                    "methods disagree",
                    f"{where}: disagrees with {entry['with']}: {'; '.join(entry['reasons'])} (Spearman {rho})",
                )
            )
    replaced = quality.get("missing_replaced_by_median")
    if replaced:
        found.append(("LIME imputed", f"{where}: LIME saw the background median for missing {', '.join(replaced)}"))
    return found


def game_description(explain_plan: ExplainPlan) -> dict[str, Any]:
    """The game that was explained: interventional with which background, or path-dependent."""
    if explain_plan.background is None:
        return {"kind": "path_dependent", "background_rows": 0}
    info = explain_plan.background_info or {}
    return {
        "kind": "interventional",
        "background_rows": len(explain_plan.background),
        # The rows themselves (a seeded sample when more were available), never a k-means summary.
        "background": "sample of rows" if info.get("sampled") else "all rows",
    }


def build_document(
    explain_plan: ExplainPlan,
    explanations: list[Explanation],
    *,
    data: dict[str, Any],
    method: str,
    warnings: list[str],
    receipts: dict[str, dict[str, int]] | None = None,
) -> ExplanationDocument:
    """The ``attributions.json`` document for a finished run (``data``: path, sha256, rows).

    ``receipts`` (from :class:`AttributionSummary`, which saw every explanation, not only those
    kept) gives per method how many explanations are exact and how many exhausted the budget.
    """
    model = explain_plan.model
    settings = explain_plan.settings
    return ExplanationDocument(
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tool_version=__version__,
        model={
            "path": model.path,
            "sha256": model.sha256,
            "type": model.type_name,
            "task": model.task,
            "output": explain_plan.output.space,
            "classes": model.classes,
        },
        data={**data, "features": list(model.feature_names)},
        background=explain_plan.background_info,
        versions=library_versions(model),
        params={
            "method": method,
            "methods": [m.NAME for m in explain_plan.methods],
            "class": settings.class_choice,
            "output": explain_plan.output.space,
            "seed": settings.seed,
            "nsamples": settings.nsamples,
            "lime_samples": settings.lime_samples,
            "n_jobs": settings.n_jobs,
            "game": game_description(explain_plan),
            "receipts": receipts if receipts is not None else AttributionSummary(explanations).receipts,
        },
        explanations=explanations,
        warnings=warnings,
    )


def library_versions(model: LoadedModel | None = None) -> dict[str, str]:
    """Versions of Python and of the libraries that computed the numbers (read without importing)."""
    versions = {"python": platform.python_version()}
    packages = ["shap", "lime", "scikit-learn", "numpy", "pandas"]
    if model is not None:
        package = type(model.final_estimator).__module__.split(".")[0]
        if package in ("xgboost", "lightgbm", "catboost"):
            packages.append(package)
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "xgboost":
                try:
                    versions[name] = metadata.version("xgboost-cpu")
                except metadata.PackageNotFoundError:
                    pass
    return versions
