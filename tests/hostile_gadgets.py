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
    # A scorer whose constructor was told to call DataFrame.to_csv at prediction time: the scorer's
    # constructor is not one the file may call.
    "scorer-calling-to-csv": (lambda: _scorer_calling("to_csv"), True),
    # Constructors the file may not call (red team 2): lightgbm's Booster joins the network its params
    # name (here ports nobody listens on) and its Dataset parses any file; xgboost's DMatrix too;
    # numpy.ndarray over a buffer the file gives; bytearray of a size allocates it.
    "lightgbm-booster-network": (lambda: Call(
        resolve("lightgbm.basic", "Booster"),
        {"machines": "127.0.0.1:9,127.0.0.1:9", "local_listen_port": 9, "time_out": 1, "num_machines": 2},
        Call(resolve("lightgbm.basic", "Dataset"), np.zeros((10, 2)))), True),
    "lightgbm-dataset-parses-a-file": (lambda: Call(resolve("lightgbm.basic", "Dataset"), "/etc/hostname"), True),
    "xgboost-dmatrix-parses-a-file": (lambda: Call(resolve("xgboost", "DMatrix"), "/etc/hostname"), True),
    "ndarray-over-a-buffer": (lambda: Call(np.ndarray, (1,), np.dtype("<u8"), bytearray(8)), True),
    "bytearray-of-40-gib": (lambda: Call(bytearray, 40 * 2**30), True),
    "partial-of-a-class": (lambda: Call(functools.partial, resolve("lightgbm.basic", "Booster")), True),
    # The same constructors reached through a rebuild function that calls a class it is given.
    "bit-generator-ctor-of-a-class": (lambda: Call(
        resolve("numpy.random._pickle", "__bit_generator_ctor"), resolve("lightgbm.basic", "Booster")), False),
    "new-index-of-an-ndarray": (lambda: Call(
        resolve("pandas.core.indexes.base", "_new_Index"), np.ndarray,
        {"shape": (1,), "dtype": np.dtype("<u8"), "buffer": bytearray(8)}), False),
    "defaultdict-of-a-class": (lambda: Call(
        __import__("collections").defaultdict, resolve("lightgbm.basic", "Booster")), False),
    "set-of-a-huge-range": (lambda: Call(set, Call(range, 0, 10**12)), False),
    # SETITEMS on something that is not a dict (pickle would run obj[key] = value).
    "setitems-on-a-set": (lambda: _SetItemsOn(set, ()), False),
    # BUILD on numpy's shared float64 dtype (its DType class's __new__ hands it out).
    "build-on-a-shared-dtype": (lambda: _NewThenBuild(
        type(np.dtype("f8")), (3, "<", None, None, None, 16, 8, 0)), False),
}


class _SetItemsOn:
    """Pickles as ``func(*args)`` followed by SETITEMS of one pair onto the result."""

    def __init__(self, func: object, args: tuple):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args, None, None, iter([("a", 1)])


class _NewThenBuild:
    """Pickles as ``cls.__new__(cls)`` (NEWOBJ) followed by BUILD with ``state``."""

    def __init__(self, cls: type, state: object):
        self.cls, self.state = cls, state

    @property  # type: ignore[misc]
    def __class__(self):  # pickle checks that NEWOBJ's class is the object's
        return self.cls

    def __reduce_ex__(self, protocol: int):
        import copyreg

        return copyreg.__newobj__, (self.cls,), self.state


# --------------------------------------------------------------------------------------------------
# numpy dtypes a BUILD turns into ones numpy would never build (red team 2)


class _DtypeWithState:
    """numpy.dtype(spec, False, True) then BUILD with ``state``: how numpy pickles a dtype."""

    def __init__(self, spec: str, state: tuple):
        self.spec, self.state = spec, state

    def __reduce__(self):
        return np.dtype, (self.spec, False, True), self.state


class _ArrayOfBytes:
    """An ndarray rebuilt the way numpy pickles one, with the given dtype and raw data."""

    def __init__(self, count: int, dtype: object, data: bytes):
        self.count, self.dtype, self.data = count, dtype, data

    def __reduce__(self):
        return (resolve("numpy._core.multiarray", "_reconstruct"), (np.ndarray, (0,), b"b"),
                (1, (self.count,), self.dtype, False, self.data))


def _flags_cleared() -> object:
    """An object dtype whose flags say it holds no objects: numpy reads the data bytes as pointers."""
    dtype = _DtypeWithState("O8", (3, "|", None, None, None, -1, -1, 0))
    return _ArrayOfBytes(2, dtype, (0x4141414141414141).to_bytes(8, "little") * 2)


def _field_outside_the_item() -> object:
    """A structured dtype with a field 1 TiB past its 8-byte item: reads and writes off the buffer."""
    dtype = _DtypeWithState("V8", (3, "|", None, ("a",), {"a": (np.dtype("<u8"), 1 << 40)}, 8, 1, 16))
    return _ArrayOfBytes(1, dtype, bytes(8))


DTYPE_TRICKS: dict[str, Callable[[], object]] = {
    "flags-cleared": _flags_cleared,
    "field-outside-the-item": _field_outside_the_item,
}
