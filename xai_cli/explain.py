"""The ``explain`` job as a library: plan the methods, pick the classes, explain rows in chunks.

:func:`prepare` does every check that can fail on the user's input before any explanation starts;
:func:`explain_chunks` then yields explanations chunk by chunk (in row order, whatever ``n_jobs``),
so the CLI can stream JSON lines and show progress; :func:`build_document` assembles
``attributions.json``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from xai_cli import __version__
from xai_cli.data import ModelRows, Table, sample_background
from xai_cli.errors import BadInput
from xai_cli.explanation import Explanation, ExplanationDocument
from xai_cli.methods import NEEDS_BACKGROUND, plan
from xai_cli.methods.base import MAX_BACKGROUND_ROWS, Batch, Settings
from xai_cli.model import LoadedModel, ModelOutput
from xai_cli.quality import add_deletion_checks, add_method_agreement

MIN_DATA_AS_BACKGROUND = 20
CHUNK_ROWS = 32
# Quality thresholds above which an explanation is flagged in ``warnings``.
LIME_MIN_R2 = 0.5
ADDITIVITY_TOLERANCE = 1e-6


@dataclass
class ExplainPlan:
    """Everything decided before the first row is explained."""

    model: LoadedModel
    rows: ModelRows
    settings: Settings
    methods: list[ModuleType]
    output: ModelOutput
    targets: list[list[int]]
    background: pd.DataFrame | None
    background_info: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def prepare(
    model: LoadedModel,
    rows: ModelRows,
    *,
    method: str,
    settings: Settings,
    output_given: bool,
    background_rows: ModelRows | None,
    background_path: str | None,
) -> ExplainPlan:
    """Check the request against the model and data and decide methods, classes and background."""
    if not output_given:
        settings = Settings(**{**settings.__dict__, "output": model.default_output(method)})
    if not model.is_classifier:
        settings = Settings(**{**settings.__dict__, "output": "raw"})
    methods, warnings = plan(model, method, settings)
    output = model.output(settings.output)

    source = background_rows if background_rows is not None else (rows if len(rows) >= MIN_DATA_AS_BACKGROUND else None)
    needs = sorted({m.NAME for m in methods} & NEEDS_BACKGROUND)
    if source is None and needs:
        raise BadInput(
            f"{', '.join(needs)} needs background rows, and DATA has only {len(rows)} (fewer than "
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
    targets = choose_targets(model, output, output.predict(rows.features), settings.class_choice)
    return ExplainPlan(model, rows, settings, methods, output, targets, background, background_info, warnings)


def choose_targets(
    model: LoadedModel, output: ModelOutput, predictions: np.ndarray, class_choice: str
) -> list[list[int]]:
    """Which output columns to explain for each row, from ``--class``."""
    n_rows = len(predictions)
    if not model.is_classifier:
        if class_choice not in ("default", "predicted", "all"):
            raise BadInput(f"--class {class_choice} given, but the model is a regressor", hint="drop --class")
        return [[0]] * n_rows
    if class_choice == "all":
        return [list(range(len(output.labels)))] * n_rows
    if class_choice == "default" and len(output.labels) == 2:
        return [[1]] * n_rows
    if class_choice in ("default", "predicted"):
        return [[int(i)] for i in np.argmax(predictions, axis=1)]
    if class_choice not in output.labels:
        raise BadInput(
            f"unknown --class {class_choice!r}",
            hint=f"classes are: {', '.join(map(str, output.labels))} (or predicted, all)",
        )
    return [[output.labels.index(class_choice)]] * n_rows


def explain_chunks(
    explain_plan: ExplainPlan, *, chunk_rows: int = CHUNK_ROWS, receipts: bool = True
) -> Iterator[list[Explanation]]:
    """Explanations chunk by chunk, in row order; ``n_jobs > 1`` spreads chunks over processes.

    ``receipts=False`` leaves out the per-row deletion check and agreement (for global summaries
    such as mean |SHAP|, which report neither).
    """
    jobs = [
        (*_chunk_job(explain_plan, start, chunk_rows), receipts)
        for start in range(0, len(explain_plan.rows), chunk_rows)
    ]
    if explain_plan.settings.n_jobs == 1 or len(jobs) == 1:
        for job in jobs:
            yield _run_chunk(*job)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=explain_plan.settings.n_jobs, return_as="generator")
    yield from parallel(delayed(_run_chunk)(*job) for job in jobs)


def _chunk_job(explain_plan: ExplainPlan, start: int, size: int) -> tuple:
    chunk = explain_plan.rows.slice(start, start + size)
    batch = Batch(chunk.features, chunk.row_numbers, chunk.ids, explain_plan.targets[start : start + size])
    return explain_plan.model, batch, explain_plan.background, explain_plan.methods, explain_plan.settings


def _run_chunk(
    model: LoadedModel,
    batch: Batch,
    background: pd.DataFrame | None,
    methods: list[ModuleType],
    settings: Settings,
    receipts: bool,
) -> list[Explanation]:
    explanations: list[Explanation] = []
    for module in methods:
        explanations.extend(module.explain(model, batch, background, settings=settings))
    if not receipts:
        return explanations
    if background is not None:
        output = model.output(settings.output)
        add_deletion_checks(explanations, batch.features, batch.row_numbers, background, output, seed=settings.seed)
    if len(methods) > 1:
        add_method_agreement(explanations)
    return explanations


def quality_warnings(explanation: Explanation) -> list[str]:
    """Plain-language warnings for an explanation whose quality receipt is poor."""
    where = f"row {explanation.id} ({explanation.method}" + (
        f", class {explanation.class_label})" if explanation.class_label is not None else ")"
    )
    quality = explanation.quality
    found = []
    gap = quality.get("additivity_gap")
    if gap is not None and gap > ADDITIVITY_TOLERANCE * max(1.0, abs(explanation.prediction)):
        found.append(f"{where}: attributions miss the prediction by {gap:.3g} (additivity gap)")
    r2 = quality.get("r2")
    if r2 is not None and r2 < LIME_MIN_R2:
        found.append(f"{where}: LIME's local model fits poorly (R² {r2:.2f} < {LIME_MIN_R2})")
    noisy = [
        a.feature for a in explanation.attributions[:3] if a.std_error is not None and a.std_error > abs(a.attribution)
    ]
    if noisy:
        found.append(f"{where}: sampling error exceeds the attribution of {', '.join(noisy)} (raise --nsamples)")
    for entry in quality.get("agreement", []):
        if entry["disagree"] and explanation.method < entry["with"]:
            rho = "n/a" if entry["spearman"] is None else f"{entry['spearman']:.2f}"
            found.append(f"{where}: disagrees with {entry['with']}: {'; '.join(entry['reasons'])} (Spearman {rho})")
    replaced = quality.get("missing_replaced_by_median")
    if replaced:
        found.append(f"{where}: LIME saw the background median for missing {', '.join(replaced)}")
    return found


def game_description(explain_plan: ExplainPlan) -> dict[str, Any]:
    """The game that was explained: interventional with which background, or path-dependent."""
    if explain_plan.background is None:
        return {"kind": "path_dependent", "background_rows": 0}
    return {"kind": "interventional", "background_rows": len(explain_plan.background)}


def build_document(
    explain_plan: ExplainPlan,
    explanations: list[Explanation],
    *,
    data: Table,
    method: str,
    warnings: list[str],
) -> ExplanationDocument:
    """The ``attributions.json`` document for a finished run."""
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
        data={
            "path": data.path,
            "sha256": data.sha256,
            "rows": len(explain_plan.rows),
            "features": list(model.feature_names),
        },
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
