"""The registry of explanation methods: ``--method`` names to modules, and what ``auto`` picks.

Every method module has ``NAME``, ``applies(model, settings)`` (``None`` when it applies, else the
reason) and ``explain(model, batch, background, *, settings)``; adding a method is adding a module
here.
"""

from __future__ import annotations

from types import ModuleType

from xai_cli.errors import BadInput
from xai_cli.methods import kernel_shap, lime_tabular, linear_shap, tree_shap
from xai_cli.methods.base import Settings
from xai_cli.model import LoadedModel

METHODS: dict[str, ModuleType] = {
    "tree": tree_shap,
    "linear": linear_shap,
    "kernel": kernel_shap,
    "lime": lime_tabular,
}
CHOICES = ("auto", "kernel", "tree", "linear", "lime", "all")
NEEDS_BACKGROUND = {kernel_shap.NAME, linear_shap.NAME, lime_tabular.NAME}


def auto_method(model: LoadedModel, settings: Settings) -> ModuleType:
    """Exact where exactness is cheap: Tree SHAP for trees, linear SHAP for linear models, else Kernel SHAP."""
    for candidate in (tree_shap, linear_shap):
        if candidate.applies(model, settings) is None:
            return candidate
    return kernel_shap


def plan(model: LoadedModel, method: str, settings: Settings) -> tuple[list[ModuleType], list[str]]:
    """The method modules to run for ``--method``, and warnings for methods ``all`` had to skip."""
    if method == "auto":
        return [auto_method(model, settings)], []
    if method == "all":
        chosen, skipped = [], []
        for module in (tree_shap, linear_shap, kernel_shap, lime_tabular):
            reason = module.applies(model, settings)
            if reason is None:
                chosen.append(module)
            else:
                skipped.append(f"{module.NAME} skipped: {reason}")
        return chosen, skipped
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}", hint=f"choose one of: {', '.join(CHOICES)}")
    module = METHODS[method]
    reason = module.applies(model, settings)
    if reason is not None:
        raise BadInput(f"--method {method} does not apply: {reason}", hint="use --method auto or kernel")
    return [module], []
