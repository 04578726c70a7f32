"""Refuse a model file that would import or call anything outside an allowlist, before it is loaded.

A pickle is a small program: loading it imports the globals it names and calls them. So before xai
loads a model it reads the file's opcodes with :func:`pickletools.genops`, *without executing them*,
lists every global the file names (``GLOBAL``, ``STACK_GLOBAL``, ``INST``), judges what each one is and
what the file does with it, and refuses the file (exit 3) when something is outside the allowlist.
Loading then applies the same rule a second time, on the real objects, in a guarded unpickler, so
that a difference between how the scan reads the file and how Python reads it cannot be turned into
a bypass.

Why this is hand-written
------------------------
The public scanners fall short on exactly the files xai loads. Denylist scanners (picklescan and
friends) list known-bad imports and read joblib files as if they were plain pickles; joblib writes raw
numpy array bytes in the middle of the pickle stream, so those scanners stop or lose their place at
the first array, and a payload placed after an array goes unseen. The stricter ones flag every
scikit-learn model, because numpy's reconstructors look like arbitrary calls. This module knows
joblib's layout (``joblib.numpy_pickle.NumpyArrayWrapper``): it recovers each array's shape, dtype and
padding from the opcodes, skips exactly the bytes joblib's own reader will consume, scans the nested
pickle that holds an object array, and carries on to the end of the stream. It follows pickle's
framing and memo the way :class:`pickle._Unpickler` does, so a ``STACK_GLOBAL`` whose module and name
come from ``BINGET`` is resolved, and one whose operands cannot be known statically is refused.

The rule: an allowlist of what may be called, not of packages
-------------------------------------------------------------
Whole packages cannot be allowed: scikit-learn, numpy, scipy and pandas hold dozens of small
functions that do ``getattr(obj, name)``, ``import_module(name)`` or hand out raw memory, and a file
that may call them runs code. So a global is judged in two steps, first by its name, then by what it
resolves to (the scan imports the module, as loading would; only modules of allowed packages that
pass the name rule are ever imported):

* Name: the module must be an allowed package (scikit-learn, numpy, scipy, pandas, xgboost, lightgbm,
  catboost, joblib's array wrapper) or a submodule, and neither module nor name may be on the deny
  lists (modules that read files, run code, plot or test: ``pandas.io``, ``numpy.lib.npyio``,
  ``scipy.io``...; words such as ``load``, ``read``, ``eval``, ``system``, ``pickle``, ``open``,
  ``import``, ``_LIB``). Dotted names (``sklearn`` + ``os.system``) and dunder names are refused, but
  for the few helpers numpy, pandas and Cython write themselves.
* Classes of those packages may be rebuilt (``__new__``, then BUILD), and *called* (their constructor
  run with the file's arguments: REDUCE, INST, OBJ) only when on an exact list of classes real model
  pickles call (``numpy.dtype``, sklearn's Cython ``Tree`` and losses, a few pandas values; see
  ``_CONSTRUCTOR_CLASSES``); lightgbm's Booster/Dataset, xgboost's DMatrix, ``numpy.ndarray`` are never
  called. A dtype a BUILD changes must be one numpy would build from its description, and is built
  once, before use. Classes are refused outright when they are metaclasses (calling one makes a new class), an
  explicit list of classes whose constructor reaches files, processes or raw memory (``numpy.memmap``,
  as_strided's ``DummyArray``...), and classes inheriting from a class of a denied module
  (joblib.Parallel) or of a standard-library module of files, processes, threads or native code.
* Anything that is not a class is allowed only by exact name (where it is defined): the functions
  real model files call to rebuild values (numpy's ``_reconstruct``, ``scalar``, ``_frombuffer``,
  pandas' ``_unpickle_*``/``_new_Index``, Cython's ``__pyx_unpickle_<Type>`` within allowed packages,
  scikit-learn's ``newObj``...), and values a model holds without the file calling them (ufuncs,
  score and metric functions, ``check_array`` for HistGradientBoosting's ``functools.partial``).
* Standard library: an exact list of plain types (``list``, ``dict``, ``set``, ``bytes``, ``slice``,
  ``datetime``...), ``functools.partial``, ``copyreg._reconstructor`` and ``_codecs.encode``; never
  ``type``, ``getattr``, ``eval``, ``exec``, ``__import__``, ``compile``, ``open``, ``globals``...
* What the file does with them: a call (REDUCE, INST, OBJ) may only call a class or a rebuild
  function the file named (never the result of another call, ``f(a)(b)``, nor a value-only
  function); NEWOBJ only a class; a ``functools.partial`` may only wrap an allowed global; no opcode
  may change a class or function the program shares (BUILD, SETITEM, APPEND... on a global); a state
  may not set dunder attributes, nor name a method other than a prediction method in the attributes
  meta-estimators and scorers call by name (``_response_method``, ``stack_method_``).
* The loader adds what only real objects show: a callable argument of a call must be an allowed
  global (numpy's random-state constructors call theirs); and once loaded, no object a call made may
  carry such attributes, however its constructor came to set them.
* ``--allow MODULE``: the user's own module (not standard library, not an allowed package) is judged
  by the user: any class or function defined in it. Inside an allowed package, ``--allow`` takes one
  exact function as a refusal names it (``--allow numpy._core.fromnumeric.clip``), under the name
  rule. A standard-library module opens its classes and functions under the name rule, and those
  that reach the system (os, subprocess, builtins, io, importlib...) not at all.
* A joblib array wrapper may only appear the way joblib writes it; any other use of it (passed to a
  call, stored in a container, fetched twice from the memo) is refused, because that is how a file
  could make the scan and the loader disagree about where the raw array bytes are.

Refusals name every refused global as the file spells it (``posix.system``), and a refused call as
``name(...)`` (a value-only function called) or ``name(...)(...)`` (the result of a call, called).

Containers: plain pickles (protocols 0-5), joblib files (plain, or compressed with zlib, gzip, bz2,
lzma or xz, told apart by their first bytes exactly as joblib does, decompressed as a stream) and
``.skops`` archives (through :func:`skops.io.get_untrusted_types`, judged by the same rule; skops
never calls a function it loads).

Outcomes
--------
* Missing file, directory, empty file, or bytes that are no pickle, joblib or skops file at all:
  :class:`~xai_cli.errors.BadInput` (exit 2), "not a model file".
* A file that starts like a pickle but cannot be read to the end (truncated, corrupt compressed data,
  malformed opcodes, joblib files older than 0.10, lz4 compression): the verdict carries a
  ``problem`` and the file is refused like an unsafe one (exit 3): the scan cannot vouch for it. When
  the file is damaged (cut short, corrupt), ``damaged`` is set and the hint says to get a complete
  copy or save the model again, never to ``--trust`` it.
* A file that passes the scan but fails while loading: ``BadInput`` with a one-line message.

What this does NOT do
---------------------
A scan is not a sandbox. It decides *which* code a file may reach, not what that code does with the
arguments the file supplies: the constructor and ``__setstate__`` of an allowed class still run on
hostile input, the model's own methods run at prediction time on attributes the file chose, and a bug
in a native parser (xgboost, lightgbm, numpy) stays reachable. It does not verify where a file comes
from or whether it is the model you expect. Files you did not make yourself are best loaded from a
source you trust; ``--trust`` skips the scan entirely.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import functools
import io
import lzma
import os
import pickle
import pickletools
import re
import types
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from xai_cli.errors import BadInput, UnsafeModel

__all__ = ["ALLOWED_ROOT_PACKAGES", "ScanVerdict", "load_model_file", "refusal_hint", "scan_model_file"]

# --------------------------------------------------------------------------------------------------
# The allowlist: what a file may name, and what of that it may call

ALLOWED_ROOT_PACKAGES: tuple[str, ...] = (
    "sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost", "joblib",
)

# What a global may be used for, once resolved. A class is made by the file in one of three ways:
# "constructor" classes may be called (REDUCE, INST, OBJ: their __init__ or native constructor runs
# with the file's arguments); "class" classes are only made by __new__ (NEWOBJ, copyreg._reconstructor)
# and then given a state by BUILD, and their __new__ ignores its arguments (object.__new__, a
# namedtuple's); "native" classes have a __new__ that does the constructor's work (numpy.ndarray, C and
# Cython types), so NEWOBJ may make one only without arguments. A "rebuild" function is one pickle
# itself calls to rebuild a value; a "value" is an object the file may hand to the model (a ufunc for
# FunctionTransformer, a score function for SelectKBest) but never call; "trusted" is anything from a
# module the user named with --allow; "unknown" is a name the scan could not resolve (the loader,
# which resolves it again, then decides, or fails to load the file).
_CALLABLE_TIERS = frozenset({"constructor", "rebuild", "trusted", "unknown"})
_CLASS_TIERS = frozenset({"constructor", "class", "trusted", "unknown"})  # NEWOBJ with arguments
_BARE_CLASS_TIERS = _CLASS_TIERS | {"native"}  # NEWOBJ without arguments: __new__(cls) only

# Standard-library globals that pickles of the allowed packages really contain, as Python 3 names them
# (pickle maps the Python 2 spellings ``__builtin__`` and ``copy_reg`` before importing), with their
# tier. Builtins are an exact list of plain value types: never type, getattr, eval, exec, compile,
# __import__, open, globals or vars. The constructors are the ones real model pickles call (found by
# loading the benign corpus): they build a plain value from plain values; bytes and bytearray only
# from text or bytes (an integer would allocate that many bytes), and no call gets a huge range.
ALLOWED_STDLIB_GLOBALS: dict[tuple[str, str], str] = {
    **{("builtins", name): "class" for name in (
        "bool", "dict", "float", "int", "list", "object", "str", "tuple")},
    **{("builtins", name): "constructor" for name in (
        "bytearray", "bytes", "complex", "frozenset", "range", "set", "slice")},
    # OrderedDict() and defaultdict(list): an empty mapping (the factory must be a plain type).
    ("collections", "OrderedDict"): "constructor", ("collections", "defaultdict"): "constructor",
    # datetime values from their packed bytes or numbers (C constructors that only parse them).
    ("datetime", "date"): "constructor", ("datetime", "datetime"): "constructor",
    ("datetime", "time"): "constructor", ("datetime", "timedelta"): "constructor",
    ("datetime", "timezone"): "constructor",
    # HistGradientBoosting keeps functools.partial(check_array, ...); the function inside a partial
    # must itself be an allowed global that may be called (both the scan and the loader check it).
    ("functools", "partial"): "constructor",
    ("copyreg", "_reconstructor"): "rebuild",  # protocols 0-1: object.__new__(cls) (+ base.__init__)
    ("_codecs", "encode"): "rebuild",  # protocol 2 spells bytes as encode(latin-1 text, "latin1")
}

# Classes of the allowed packages that real model pickles call (REDUCE) to rebuild themselves, by
# where they are defined; found by loading the benign corpus and listing every class called. Every
# other class may only be made through __new__ and given a state (its __init__ never runs with the
# file's arguments): a constructor that opens sockets or files (lightgbm's Booster and Dataset,
# xgboost's DMatrix, catboost's Pool), allocates, or builds views of memory is never reached.
_CONSTRUCTOR_CLASSES: frozenset[tuple[str, str]] = frozenset({
    # A data type from its text description; the loader then checks that it is one numpy would build
    # itself (see _check_dtype), however a BUILD changes it.
    ("numpy", "dtype"),
    # pandas values and dtypes from their text and numbers, and the block manager from blocks the
    # file made (pandas checks they fit its axes).
    ("pandas", "Period"), ("pandas", "Interval"), ("pandas", "PeriodDtype"), ("pandas", "StringDtype"),
    ("pandas.core.internals.managers", "BlockManager"),
    # scikit-learn's Cython tree (arrays sized by its numbers, filled by __setstate__, which checks
    # them) and its Cython loss functions (a few floats).
    ("sklearn.tree._tree", "Tree"),
})
# Classes whose subclasses are all plain values built from numbers: pandas' date offsets
# (Day(n, normalize), DateOffset(months=1)...) and scikit-learn's Cython loss functions.
_CONSTRUCTOR_BASES: frozenset[tuple[str, str]] = frozenset({
    ("pandas._libs.tslibs.offsets", "BaseOffset"), ("sklearn._loss._loss", "CyLossFunction"),
})

# Classes that are harmless to call with any plain arguments: what a defaultdict's factory and
# copyreg._reconstructor's base (protocols 0-1: base.__new__(cls, state), base.__init__(obj, state))
# may be, besides object and the constructors above.
_PLAIN_TYPES_NAMES = ("bool", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "set",
                      "str", "tuple")

# The functions a real model file calls to rebuild its values, by where they are defined
# (``__module__``, ``__qualname__``; numpy 1 and numpy 2 spellings). Each one only builds a value of
# its own kind from the data it is given: it reads no file, imports nothing and looks up no attribute
# named by the file. Found by pickling the benign corpus of tests/test_safety.py (protocols 0-5, every
# joblib compression) and listing every global that is not a class.
_REBUILD_FUNCTIONS: frozenset[tuple[str, str]] = frozenset({
    # ndarray.__reduce__: an empty array of a given ndarray subclass, filled by its __setstate__;
    # numpy scalars from their bytes; protocol 5 arrays from a buffer.
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.ma.core", "_mareconstruct"),  # a masked array from its data and mask arrays
    # numpy random generators: a named or given bit generator. The loader checks that a callable
    # argument (the bit generator constructor) is itself an allowed global.
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    # pandas' own reconstructors for blocks, indexes and date/time scalars.
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
    ("pandas.core.indexes.period", "_new_PeriodIndex"),
    ("pandas._libs.tslibs.nattype", "_nat_unpickle"), ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas.core.indexes.interval", "_new_IntervalIndex"),
    ("pandas.core.indexes.timedeltas", "_new_TimedeltaIndex"),
    ("pandas.core.arrays.sparse.array", "_make_sparse"),
    # scikit-learn's Cython trees and metrics: cls.__new__(cls) for their own types.
    ("sklearn.neighbors._kd_tree", "newObj"), ("sklearn.neighbors._ball_tree", "newObj"),
    ("sklearn.metrics._dist_metrics", "newObj"),
    # a numpy DType class (type(np.dtype("f8"))) from its scalar type
    ("numpy.core", "_DType_reconstruct"), ("numpy._core", "_DType_reconstruct"),
})

# Functions a model holds as a value and calls on its data: FunctionTransformer(func=...),
# TransformedTargetRegressor, SelectKBest(score_func=...), HistGradientBoosting's partial(check_array),
# scipy's BSpline (its array namespace's asarray), GridSearchCV's scorers (metric functions). Each one
# computes on arrays and nothing else; the file may hand them to the model but never call them itself.
# ufuncs (np.log1p, scipy.special.expit...) are values too: numpy 2 pickles np.log1p as the global
# numpy.log1p. A ufunc only computes elementwise; none in the allowed packages wraps a Python function.
_VALUE_FUNCTIONS: frozenset[tuple[str, str]] = frozenset({
    ("sklearn.utils.validation", "check_array"),
    *(("sklearn.feature_selection._univariate_selection", name) for name in (
        "f_classif", "f_regression", "chi2", "r_regression", "f_oneway")),
    ("sklearn.feature_selection._mutual_info", "mutual_info_classif"),
    ("sklearn.feature_selection._mutual_info", "mutual_info_regression"),
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
    ("sklearn.externals.array_api_compat.numpy._aliases", "asarray"),
    ("numpy", "asarray"),
    *(("sklearn.metrics._classification", name) for name in (
        "accuracy_score", "balanced_accuracy_score", "brier_score_loss", "cohen_kappa_score",
        "d2_log_loss_score", "f1_score", "fbeta_score", "hamming_loss", "hinge_loss", "jaccard_score",
        "log_loss", "matthews_corrcoef", "precision_score", "recall_score", "zero_one_loss",
        "d2_brier_score")),
    *(("sklearn.metrics._regression", name) for name in (
        "d2_absolute_error_score", "d2_pinball_score", "d2_tweedie_score", "explained_variance_score",
        "max_error", "mean_absolute_error", "mean_absolute_percentage_error", "mean_gamma_deviance",
        "mean_pinball_loss", "mean_poisson_deviance", "mean_squared_error", "mean_squared_log_error",
        "mean_tweedie_deviance", "median_absolute_error", "r2_score", "root_mean_squared_error",
        "root_mean_squared_log_error")),
    *(("sklearn.metrics._ranking", name) for name in (
        "average_precision_score", "roc_auc_score", "ndcg_score", "dcg_score", "top_k_accuracy_score",
        "label_ranking_average_precision_score", "coverage_error", "label_ranking_loss")),
})
# Plain values a file may name (not callable, not classes).
_SINGLETON_VALUES: frozenset[tuple[str, str]] = frozenset({("pandas", "NA"), ("pandas._libs.missing", "NA")})

# The one joblib global a joblib file needs: the placeholder that announces raw array bytes.
_JOBLIB_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")

# Dunder names are refused (``__import__``, ``__builtins__``, a module's ``__getattr__``...) except
# the pickling helpers numpy and Cython write themselves; those only build their own types.
_ALLOWED_DUNDER_GLOBALS = frozenset({
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"),
})
# Cython writes ``__pyx_unpickle_<Type>(type, checksum, state)`` for each picklable cdef class: it
# checks the checksum and builds only its own type (``<Type>.__new__(type)``). Allowed as rebuild
# functions when they are defined in an allowed package.
_CYTHON_UNPICKLE_HELPER = re.compile(r"__pyx_unpickle_[A-Za-z0-9_]+")

# Modules inside allowed packages that read other files (often with an unchecked pickle), run code,
# change global settings, or exist only for tests. A module is denied when it is one of these or below
# one, and so is a class that inherits from a class defined in one.
_DENIED_MODULES: tuple[str, ...] = (
    "joblib",  # joblib.load, Memory, Parallel...; only the array wrapper above is needed
    "numpy.testing", "numpy.distutils", "numpy.f2py", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._format_impl", "numpy.lib._datasource",
    "numpy.lib.utils", "numpy.lib._utils_impl", "numpy._pytesttester", "numpy.compat",
    "numpy.core._internal", "numpy._core._internal",  # ctypes views of raw pointers
    "numpy.lib.introspect", "numpy._pyinstaller", "numpy.random._examples",
    "pandas.io", "pandas.core.computation", "pandas.compat.pickle_compat", "pandas.util",
    "pandas.testing", "pandas._testing", "pandas._config", "pandas.core.config_init",
    "scipy.io", "scipy._lib._testutils", "scipy.misc", "scipy.odr", "scipy.datasets",
    "scipy._lib._ccallback",  # LowLevelCallable: a raw function pointer
    "sklearn.datasets", "sklearn.utils._testing", "sklearn.utils.estimator_checks",
    "sklearn.utils._show_versions",
    "xgboost.testing", "xgboost.dask", "xgboost.spark", "xgboost.tracker", "xgboost.collective",
    "lightgbm.dask",
)
# Module path parts that mean test helpers, file I/O, plotting backends (which import modules by
# name) or scripts, wherever they appear.
_DENIED_MODULE_PARTS = frozenset({"io", "testing", "_testing", "tests", "conftest", "plotting",
                                  "__main__", "examples", "_examples", "benchmarks", "_precompute",
                                  "setup", "_build_utils"})

# Standard-library modules whose classes reach files, processes, threads, sockets, native code or
# the interpreter. --allow cannot open them, and a class of an allowed package that inherits from one
# of their classes (a file handler, a thread, a temporary directory...) is refused.
_DENIED_STDLIB_MODULES = frozenset({
    "builtins", "os", "posix", "nt", "sys", "io", "_io", "subprocess", "shutil", "tempfile", "socket",
    "ssl", "select", "selectors", "signal", "threading", "_thread", "multiprocessing", "concurrent",
    "asyncio", "ctypes", "_ctypes", "importlib", "pkgutil", "runpy", "code", "codeop", "pdb", "bdb",
    "inspect", "pickle", "_pickle", "copyreg", "marshal", "shelve", "dbm", "sqlite3", "zipfile",
    "tarfile", "gzip", "bz2", "lzma", "zlib", "mmap", "logging", "pathlib", "glob", "fileinput",
    "webbrowser", "http", "urllib", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc",
    "pty", "tty", "termios", "fcntl", "resource", "gc", "weakref", "types", "operator", "functools",
    "atexit", "faulthandler", "platform", "sysconfig", "site", "zipimport", "codecs", "_codecs",
    "tkinter", "turtle", "venv", "ensurepip", "compileall", "py_compile", "trace", "tracemalloc",
    "timeit", "cProfile", "profile", "pstats", "unittest", "doctest", "pydoc", "sched", "queue",
    "wsgiref", "socketserver", "mailbox", "email", "uuid", "random", "secrets", "xml", "plistlib",
})

# Classes of allowed packages whose constructor or __setstate__ reaches the file system, the
# interpreter or raw memory, by where they are defined. Their modules are not denied as a whole
# because models need other classes from them.
_DENIED_CLASSES: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "memmap"), ("numpy.core.memmap", "memmap"), ("numpy._core.memmap", "memmap"),
    # as_strided's helper: an array over any address its __array_interface__ names
    ("numpy.lib.stride_tricks", "DummyArray"), ("numpy.lib._stride_tricks_impl", "DummyArray"),
    ("lightgbm.engine", "CVBooster"),  # opens and parses a file named by its argument
    ("sklearn.utils.parallel", "Parallel"),  # runs work in other processes
    ("numpy", "vectorize"),  # calls whatever function it holds; models never keep one
})

# Words that, in a global's name, mean reading or writing files, loading another pickle, running
# code or reaching the interpreter. A name is split into words at underscores and case changes
# ("read_pickle" -> read, pickle; "HDFStore" -> hdf, store; "_LIB" -> lib).
_DENIED_NAME_WORDS = frozenset({
    "eval", "exec", "execfile", "system", "popen", "spawn", "subprocess", "shell", "command",
    "load", "loads", "loadtxt", "genfromtxt", "fromfile", "fromregex", "tofile", "read", "open",
    "save", "savez", "savetxt", "write", "writer", "dump", "dumps", "memmap", "datasource", "store",
    "hdf", "excel", "sql", "pickle", "pickler", "unpickler", "import", "importlib", "compile",
    "globals", "locals", "vars", "getattr", "setattr", "delattr", "input", "breakpoint",
    "fetch", "download", "url", "urlopen", "urlretrieve", "lib", "cdll", "ctypes", "dlopen",
    "os", "sys", "builtins", "module",
})
# Fragments denied anywhere in a name, however it is cased or joined ("execv", "ossystem").
_DENIED_NAME_FRAGMENTS = ("exec", "system", "popen", "spawn", "subprocess", "getattr", "setattr",
                          "delattr", "datasource")

_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_DOTTED_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_TRUST_HINT = ("if you trust this file, pass --trust (or set XAI_TRUST=1); "
               "to allow your own module, pass --allow MODULE")
_DAMAGED_HINT = ("the file looks damaged or cut short (an interrupted download or copy?): get a complete "
                 "copy, or save the model again with joblib.dump or pickle.dump")
_NOT_A_MODEL_HINT = "xai reads files written by pickle.dump, joblib.dump or skops.io.dump"

# Function types whose __module__ and __qualname__ say where they were defined.
_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType)
# Cython's functions, and numpy's __array_function__ dispatchers (np.clip, np.sum...).
_OTHER_FUNCTION_TYPE_NAMES = frozenset({"cython_function_or_method", "fused_cython_function",
                                        "_ArrayFunctionDispatcher"})


@dataclass(frozen=True)
class _Policy:
    """The allowlist for one run: the built-in rule plus the user's --allow names.

    ``user`` modules (not standard library, not inside an allowed package) are trusted whole: the
    user wrote them. An --allow name inside an allowed package is one exact function the user vouches
    for (``--allow numpy._core.fromnumeric.clip``, as a refusal spells it), still under the word and
    module deny lists; the packages themselves (``--allow sklearn``) open nothing more, because their
    other functions are the gadgets this rule exists to refuse. An --allow standard-library module
    adds its classes and functions under the same deny lists; the ones that reach the system (os,
    subprocess, builtins, io, importlib...) add nothing.
    """

    roots: tuple[str, ...]  # where classes may come from
    user: tuple[str, ...] = ()
    exact: frozenset[tuple[str, str]] = frozenset()  # functions of allowed packages the user named
    stdlib: tuple[str, ...] = ()  # standard-library modules the user allowed


def _stdlib_top(module: str) -> bool:
    import sys

    return module.split(".")[0] in sys.stdlib_module_names


def _policy(allow: Sequence[str]) -> _Policy:
    if isinstance(allow, str):
        allow = (allow,)
    roots, user, exact, stdlib = list(ALLOWED_ROOT_PACKAGES), [], set(), []
    for module in allow:
        if not isinstance(module, str) or not _DOTTED_MODULE.fullmatch(module):
            raise BadInput(f"--allow expects a module name, got {module!r}",
                           "pass the top-level package of your own classes, e.g. --allow mypkg")
        if _within(module, ALLOWED_ROOT_PACKAGES):
            parent, _, name = module.rpartition(".")
            if parent:
                exact.add((parent, name))
        elif _stdlib_top(module):
            if module.split(".")[0] not in _DENIED_STDLIB_MODULES:
                roots.append(module)
                stdlib.append(module)
        else:
            user.append(module)
    return _Policy(tuple(roots), tuple(user), frozenset(exact), tuple(stdlib))


def _python3_global(module: str, name: str) -> tuple[str, str]:
    """The (module, name) pickle really imports: Python 2 spellings are mapped as find_class does.

    The mapping is applied whatever the protocol: the real mapping depends on the unpickler's current
    protocol, which a nested unpickler inherits from its parent, and the Python 2 module names it
    maps (``__builtin__``, ``copy_reg``...) do not exist in Python 3 anyway.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _within(module: str, packages: Sequence[str]) -> bool:
    """Whether ``module`` is one of ``packages`` or a submodule of one."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def _name_is_denied(name: str) -> bool:
    lowered = name.lower()
    if any(fragment in lowered for fragment in _DENIED_NAME_FRAGMENTS):
        return True
    return any(word.lower() in _DENIED_NAME_WORDS for word in _NAME_WORD.findall(name))


def _module_is_denied(module: str) -> bool:
    return _within(module, _DENIED_MODULES) or bool(_DENIED_MODULE_PARTS.intersection(module.split(".")))


def _is_refused_global(module: str, name: str, policy: _Policy) -> bool:
    """Whether the name ``module.name`` alone is refused, before anything is imported.

    The first half of the rule, shared by the scan and the loader; what the name is bound to (a
    class, which function) is judged by :func:`_tier` once it is resolved.
    """
    module, name = _python3_global(module, name)
    if (module, name) == _JOBLIB_ARRAY_WRAPPER or (module, name) in ALLOWED_STDLIB_GLOBALS:
        return False
    if not _DOTTED_MODULE.fullmatch(module) or not name.isidentifier() or not name.isascii():
        return True  # includes every dotted name: "os.system" inside "sklearn" walks out of sklearn
    if name.startswith("__") and (module, name) not in _ALLOWED_DUNDER_GLOBALS \
            and not _CYTHON_UNPICKLE_HELPER.fullmatch(name):
        return True
    if _within(module, policy.user):
        return False  # the user's own module, judged by the user's --allow
    if not _within(module, policy.roots) or _module_is_denied(module):
        return True
    return _name_is_denied(name)


def _origin(resolved: object) -> tuple[str | None, str | None]:
    try:
        module, qualname = getattr(resolved, "__module__", None), getattr(resolved, "__qualname__", None)
    except Exception:  # an object that fails to describe itself is not one we know
        return None, None
    return (module if isinstance(module, str) else None, qualname if isinstance(qualname, str) else None)


def _is_ufunc(resolved: object) -> bool:
    import sys

    numpy = sys.modules.get("numpy")  # a ufunc can only exist once numpy is imported
    return numpy is not None and isinstance(resolved, numpy.ufunc)


def _class_is_refused(cls: type, policy: _Policy) -> bool:
    """Metaclasses, denied classes, and classes inheriting from a denied module's class."""
    if issubclass(cls, (type, types.ModuleType)):
        return True  # calling a metaclass makes a new class from the file's names and functions
    for klass in cls.__mro__:
        module, qualname = _origin(klass)
        if module is None or (module, qualname) in _DENIED_CLASSES:
            return True
        top = module.split(".")[0]
        if klass is not cls and module == "builtins":
            continue
        if top in _DENIED_STDLIB_MODULES and (module, qualname) not in ALLOWED_STDLIB_GLOBALS:
            return True
        if _within(module, _DENIED_MODULES) and (module, qualname) != _JOBLIB_ARRAY_WRAPPER:
            return True
    return False


def _new_ignores_arguments(cls: type) -> bool:
    """Whether ``cls.__new__(cls, *args)`` makes an empty instance whatever the arguments: the
    __new__ is object's, or a namedtuple's (a tuple of the given values)."""
    try:
        new = cls.__new__
    except Exception:  # a class that fails to describe itself is not one we know
        return False
    if new is object.__new__:
        return True
    return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple) \
        and "__new__" in cls.__dict__ and isinstance(cls.__dict__["__new__"], (types.FunctionType, staticmethod))


def _class_tier(cls: type, origin: str, qualname: str | None, policy: _Policy) -> str:
    """"constructor", "class" or "native" for an allowed class of an allowed package (see the tiers)."""
    if (origin, qualname) in _CONSTRUCTOR_CLASSES or _within(origin, policy.stdlib) \
            or any(_origin(klass) in _CONSTRUCTOR_BASES for klass in cls.__mro__):
        return "constructor"
    return "class" if _new_ignores_arguments(cls) else "native"


def _tier(resolved: object, module: str, name: str, policy: _Policy) -> str | None:
    """What the object a global resolved to may be used for ("class", "rebuild", "value",
    "trusted"), or None when it is refused. The second half of the rule, shared by scan and loader."""
    module, name = _python3_global(module, name)
    if isinstance(resolved, types.ModuleType):
        return None
    try:
        if type(resolved).__module__.split(".")[0] in ("ctypes", "_ctypes"):
            return None
    except Exception:
        return None
    if _is_ufunc(resolved):  # ufuncs carry no __module__; pickle finds one that holds them
        return "value" if _within(module, ALLOWED_ROOT_PACKAGES) else None
    origin, qualname = _origin(resolved)
    if (module, name) in ALLOWED_STDLIB_GLOBALS:
        return ALLOWED_STDLIB_GLOBALS[(module, name)] if (origin, qualname) == (module, name) else None
    if (module, name) == _JOBLIB_ARRAY_WRAPPER:
        return "class" if (origin, qualname) == _JOBLIB_ARRAY_WRAPPER else None
    if origin is None:
        return None
    if _within(origin, policy.user):
        return "trusted"  # defined in the user's own module (not one it merely imported)
    if isinstance(resolved, type):
        if not _within(origin, policy.roots) or _module_is_denied(origin) or _name_is_denied(resolved.__name__):
            return None
        return None if _class_is_refused(resolved, policy) else _class_tier(resolved, origin, qualname, policy)
    if (module, name) in _SINGLETON_VALUES and not callable(resolved):
        return "value"
    is_function = isinstance(resolved, _FUNCTION_TYPES) \
        or type(resolved).__name__ in _OTHER_FUNCTION_TYPE_NAMES
    if not is_function or qualname is None:
        return None
    if (origin, qualname) in _REBUILD_FUNCTIONS:
        return "rebuild"
    if _CYTHON_UNPICKLE_HELPER.fullmatch(qualname) and _within(origin, ALLOWED_ROOT_PACKAGES) \
            and not _module_is_denied(origin):
        return "rebuild"
    if (origin, qualname) in _VALUE_FUNCTIONS:
        return "value"
    if ((origin, qualname) in policy.exact or (module, name) in policy.exact or _within(origin, policy.stdlib)) \
            and not _module_is_denied(origin) and not _name_is_denied(qualname):
        return "rebuild"  # a function the user allowed by its exact name, or by its stdlib module
    return None


def _resolve(module: str, name: str) -> object:
    """What pickle's find_class would return for ``module.name`` (which imports ``module``).

    Only called for names that passed :func:`_is_refused_global`: modules of the allowed packages.
    """
    import importlib
    import sys
    import warnings

    module, name = _python3_global(module, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core's deprecation notice, for one
        importlib.import_module(module)
        return getattr(sys.modules[module], name)


# --------------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class ScanVerdict:
    """What the scan found in a model file.

    ``refused`` and ``imports`` spell globals as the file does ("posix.system", "__builtin__.set");
    ``refused`` also names calls the file may not make ("numpy.log1p(...)", "x.f(...)(...)").
    For a skops file, ``imports`` lists the types skops does not trust by itself. An uncompressed
    joblib file holding no numpy array is a plain pickle, and its container is "pickle".
    """

    safe: bool
    refused: list[str]  # every refused import (and refused call), sorted unique
    imports: list[str]  # every global the file imports, "module.name", sorted unique
    container: str  # "pickle", "joblib", "joblib+zlib", "joblib+gzip", "joblib+lzma", "joblib+xz",
    #                 "joblib+bz2" or "skops"
    problem: str | None  # why the scan could not read the whole file, None when it did
    damaged: bool = False  # the problem is that the file is cut short or corrupt, not a construct

    @property
    def hint(self) -> str:
        """What to tell the user about a refusal: re-get a damaged file; --trust/--allow otherwise."""
        return _DAMAGED_HINT if self.damaged and not self.refused else _TRUST_HINT


def refusal_hint(verdict: ScanVerdict) -> str:
    """The hint for a refused file: a damaged one is not to be trusted but re-saved."""
    return verdict.hint


class _ScanProblem(Exception):
    """The scan cannot follow the file from here on, so it cannot vouch for it."""


class _Damaged(_ScanProblem):
    """The file ends early or its bytes are corrupt: damaged, not hostile-looking."""


class _NotAModel(Exception):
    """The bytes are no pickle, joblib or skops file at all."""


# --------------------------------------------------------------------------------------------------
# Containers: which format a file is, and its pickle stream

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_JOBLIB_BEFORE_0_10_MAGIC = b"ZF"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_JOBLIB_BEFORE_0_10_PROBLEM = ("written by joblib older than 0.10, whose arrays live in companion files "
                               "loaded without checks; re-save it with a current joblib")
# In the order joblib's _detect_compressor tries them, with the same prefixes, so that the scan and
# the loader always agree on how a file is compressed.
_COMPRESSION_MAGICS = (
    (b"\x78", "joblib+zlib"),
    (b"\x1f\x8b", "joblib+gzip"),
    (b"BZ", "joblib+bz2"),
    (b"\x5d\x00", "joblib+lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "joblib+xz"),
)
_DECOMPRESSED_BUFFER_BYTES = 1 << 20


def _container_of(head: bytes) -> str:
    """The container a file's first bytes announce: "pickle" when nothing else matches."""
    return next((container for magic, container in _COMPRESSION_MAGICS if head.startswith(magic)), "pickle")


def _pickle_stream(file: BinaryIO, container: str) -> BinaryIO:
    """The pickle bytes of ``file``, decompressed as a stream with joblib's own decompressors."""
    if container in ("pickle", "joblib"):
        return file
    from joblib.compressor import BinaryGzipFile, BinaryZlibFile

    opener = {"joblib+zlib": BinaryZlibFile, "joblib+gzip": BinaryGzipFile, "joblib+bz2": bz2.BZ2File,
              "joblib+lzma": lzma.LZMAFile, "joblib+xz": lzma.LZMAFile}[container]
    return io.BufferedReader(opener(file, "rb"), buffer_size=_DECOMPRESSED_BUFFER_BYTES)


# --------------------------------------------------------------------------------------------------
# Reading the stream the way pickle._Unpickler does

_READ_CHUNK_BYTES = 1 << 24
_FRAME_CUT_SHORT = "pickle data ends in the middle of a frame: the file looks truncated or damaged"
_MAX_FRAME_BYTES = 1 << 26  # pickle writes frames of about 64 KiB; large values go outside frames
_MAX_LINE_BYTES = 1 << 30  # protocol 0 writes an array's bytes as one text line


def _read_up_to(raw: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes or up to the end, in chunks: a length the file claims is never allocated."""
    chunks = []
    while size > 0:
        chunk = raw.read(min(size, _READ_CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _skip_exactly(raw: BinaryIO, size: int, what: str) -> None:
    while size > 0:
        chunk = raw.read(min(size, _READ_CHUNK_BYTES))
        if not chunk:
            raise _Damaged(f"the data ends inside {what}: the file looks truncated")
        size -= len(chunk)


class _FramedReader:
    """The file interface genops reads opcodes through, with pickle's framing (protocol 4+).

    pickle._Unframer reads a whole frame into memory and serves opcodes from it, while joblib reads
    raw array bytes from the underlying file. Following frames exactly as the unpickler does keeps the
    scan's idea of "where the array bytes start" equal to joblib's, even in a hand-made file.
    """

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.frame: io.BytesIO | None = None

    def read(self, size: int) -> bytes:
        if self.frame is not None:
            data = self.frame.read(size)
            if not data and size != 0:
                self.frame = None
                return _read_up_to(self.raw, size)
            if len(data) < size:
                raise _Damaged(_FRAME_CUT_SHORT)
            return data
        return _read_up_to(self.raw, size)

    def readline(self) -> bytes:
        if self.frame is not None:
            line = self.frame.readline()
            if not line:
                self.frame = None
                return self._raw_line()
            if not line.endswith(b"\n"):
                raise _Damaged(_FRAME_CUT_SHORT)
            return line
        return self._raw_line()

    def _raw_line(self) -> bytes:
        line = self.raw.readline(_MAX_LINE_BYTES)
        if len(line) == _MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise _ScanProblem("a protocol-0 line longer than 1 GiB")
        return line

    def start_frame(self, size: int) -> None:
        if self.frame is not None and self.frame.read() != b"":
            raise _Damaged("a frame starts before the previous one ends")
        if size > _MAX_FRAME_BYTES:
            raise _Damaged(f"a pickle frame of {size} bytes (pickle writes about 64 KiB)")
        self.frame = io.BytesIO(_read_up_to(self.raw, size))


# --------------------------------------------------------------------------------------------------
# The opcode walk: a symbolic unpickler that imports and calls nothing

@dataclass(eq=False)
class _Global:
    """A class or function the pickle imports: as spelled in the file, and as Python 3 resolves it."""

    spelled: str
    module: str
    name: str
    tier: str | None = None  # what it may be used for (see _tier); None when refused

    def is_(self, module: str, name: str) -> bool:
        return (self.module, self.name) == (module, name)


@dataclass(eq=False)
class _Call:
    """An object the pickle makes by calling something (REDUCE, NEWOBJ, INST, OBJ); never made here."""

    func: object
    args: object
    states: list = field(default_factory=list)  # what BUILD opcodes gave it, in order


@dataclass(eq=False)
class _ArrayWrapper:
    """A joblib NumpyArrayWrapper before its BUILD: the attributes tell how many raw bytes follow."""

    attributes: dict


@dataclass(eq=False)
class _WrapperReconstructArgs:
    """The tuple (NumpyArrayWrapper, object, None): copyreg._reconstructor's arguments, protocols 0-1."""


class _Opaque:
    """A value the scan does not follow: an array read from raw bytes, a long string, a buffer."""


_KEPT_VALUE_LENGTH = 4096  # longer strings and bytes only matter as opaque values
_NUMPY_DTYPE_GLOBALS = frozenset({("numpy", "dtype"), ("numpy.core.multiarray", "dtype"),
                                  ("numpy._core.multiarray", "dtype")})
_WRAPPER_ATTRIBUTES = frozenset({"subclass", "shape", "order", "dtype", "allow_mmap",
                                 "numpy_array_alignment_bytes"})
_MAX_DTYPE_NESTING = 32


@dataclass
class _Findings:
    """What a walk has seen so far, shared with the walks of nested object-array pickles."""

    imports: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    tiers: dict[tuple[str, str], str | None] = field(default_factory=dict)
    protocol_header: bool = False
    reached_stop: bool = False
    read_joblib_array: bool = False

    @property
    def looks_like_pickle(self) -> bool:
        return self.protocol_header or self.reached_stop or bool(self.imports)


class _OpcodeWalk:
    """Follow one pickle stream opcode by opcode, keeping a stack and memo of symbolic values.

    Values are the literal ones (str, int, tuples, dicts...) where the scan needs them, and
    placeholders for whatever a call would make. That is enough to resolve STACK_GLOBAL operands that
    come from the memo, and to read a joblib array wrapper's shape and dtype. ``reads_joblib_arrays``
    is True for a file's main stream (joblib's unpickler reads raw array bytes after each wrapper) and
    False for the nested pickle of an object array, which joblib reads with a plain unpickler.
    """

    def __init__(self, raw: BinaryIO, findings: _Findings, policy: _Policy, *,
                 reads_joblib_arrays: bool):
        self.raw = raw
        self.reader = _FramedReader(raw)
        self.findings = findings
        self.policy = policy
        self.reads_joblib_arrays = reads_joblib_arrays
        self.stack: list = []
        self.metastack: list[list] = []
        self.memo: dict[int, object] = {}
        self.opcodes_read = 0

    def run(self) -> object:
        """Walk to the STOP opcode and return the symbolic value the pickle produces."""
        for opcode, arg, _position in pickletools.genops(self.reader):
            self.opcodes_read += 1
            if opcode.name == "STOP":
                result = self._consumed(self._pop())
                if self.reads_joblib_arrays:
                    self.findings.reached_stop = True
                return result
            getattr(self, "_op_" + opcode.name)(arg)
        raise _Damaged("the pickle data ends before its STOP opcode")  # genops raises first

    # -- stack helpers --------------------------------------------------------------------------

    def _push(self, value: object) -> None:
        self.stack.append(value)

    def _pop(self) -> object:
        if not self.stack:
            raise _Damaged("an opcode takes a value from an empty stack")
        return self.stack.pop()

    def _top(self) -> object:
        if not self.stack:
            raise _Damaged("an opcode needs a value on an empty stack")
        return self.stack[-1]

    def _pop_mark(self) -> list:
        if not self.metastack:
            raise _Damaged("an opcode needs a MARK that is not there")
        items, self.stack = self.stack, self.metastack.pop()
        return items

    def _is_wrapper_class(self, value: object) -> bool:
        return isinstance(value, _Global) and value.is_(*_JOBLIB_ARRAY_WRAPPER)

    def _consumed(self, value: object) -> object:
        """Check a value an opcode puts into a container, a call, a state or the result.

        joblib's array wrapper (the class, an instance, its reconstructor arguments) never goes
        anywhere but into its own construction and BUILD. Passed to a call, it could come back as an
        object the scan cannot recognise but joblib's unpickler would, and the two would disagree on
        where raw array bytes are; so any such use ends the scan.
        """
        if isinstance(value, (_ArrayWrapper, _WrapperReconstructArgs)) or self._is_wrapper_class(value):
            raise _ScanProblem("a joblib array wrapper is used in a way joblib never writes")
        return value

    def _literal(self, value: object) -> object:
        if isinstance(value, (str, bytes, bytearray)) and len(value) > _KEPT_VALUE_LENGTH:
            return _Opaque()
        return value

    # -- imports --------------------------------------------------------------------------------

    def _import(self, module: str, name: str) -> _Global:
        spelled = f"{module}.{name}"
        self.findings.imports.add(spelled)
        if (module, name) not in self.findings.tiers:
            self.findings.tiers[(module, name)] = _scan_tier(module, name, self.policy)
        tier = self.findings.tiers[(module, name)]
        if tier is None:
            self.findings.refused.add(spelled)
        return _Global(spelled, *_python3_global(module, name), tier=tier)

    # -- what a call may call -------------------------------------------------------------------

    def _check_call(self, func: object, args: object, *, new: bool = False) -> None:
        """Refuse a call whose callable is not an allowed constructor or rebuild function named by the
        file, and a NEWOBJ of anything but a class (with arguments, only one whose __new__ ignores them).

        The result of another call is never called (``getattr(...)(...)`` chains), nor a value-only
        function (a ufunc, a score function), nor a literal, nor a class outside the constructor
        allowlist (its __init__ would run with the file's arguments). A refused global is named already.
        """
        if isinstance(func, _Global):
            if func.tier is None:
                return
            if func.tier in ((_BARE_CLASS_TIERS if args == () else _CLASS_TIERS) if new else _CALLABLE_TIERS):
                if not new:
                    self._check_arguments(func, args)
                return
        root = func
        while isinstance(root, _Call):
            root = root.func
        if isinstance(root, _Global) and root.tier is None:
            return  # a chain that starts from a refused global: that name says it all
        self.findings.refused.add(_call_spelling(func))

    def _check_arguments(self, func: _Global, args: object) -> None:
        """What the scan can tell about a call's arguments from the literals (the loader checks the
        real objects): a partial wraps something that may be called, bytes and bytearray get text or
        bytes (never a size), and copyreg._reconstructor's base is object or a plain type."""
        args = args if isinstance(args, tuple) else ()
        if func.is_("functools", "partial"):
            self._check_partial_function(args[0] if args else None)
        elif func.is_("builtins", "bytes") or func.is_("builtins", "bytearray"):
            if not all(isinstance(arg, (str, bytes, _Opaque)) or (isinstance(arg, _Call) and isinstance(
                    arg.func, _Global) and arg.func.is_("_codecs", "encode")) for arg in args):
                self.findings.refused.add(f"{func.spelled}({', '.join(_value_spelling(arg) for arg in args)})")
        elif func.is_("copyreg", "_reconstructor"):
            base = args[1] if len(args) == 3 else None
            if not (isinstance(base, _Global) and (base.tier in ("constructor", "trusted", "unknown") or any(
                    base.is_("builtins", name) for name in ("object", *_PLAIN_TYPES_NAMES)))):
                self.findings.refused.add(f"copyreg._reconstructor(..., {_value_spelling(base)}, ...)")

    def _check_partial_function(self, function: object) -> None:
        """A partial is called by the model's own code later: it may wrap a function or an allowed
        constructor, never a class whose __init__ the file may not run."""
        if not isinstance(function, _Global) or function.tier in ("class", "native"):
            if not (isinstance(function, _Global) and function.tier is None):  # named already
                self.findings.refused.add(f"functools.partial({_value_spelling(function)})")

    def _check_mutable(self, target: object, opcode: str) -> None:
        if isinstance(target, _Global):
            raise _ScanProblem(f"a {opcode} that would change {target.spelled} for the whole program")

    def _op_GLOBAL(self, arg: str) -> None:
        module, _, name = arg.partition(" ")
        self._push(self._import(module, name))

    def _op_STACK_GLOBAL(self, _arg: None) -> None:
        name = self._consumed(self._pop())
        module = self._consumed(self._pop())
        if type(module) is not str or type(name) is not str:
            raise _ScanProblem("a STACK_GLOBAL whose module and name are only known by running the file")
        self._push(self._import(module, name))

    def _op_INST(self, arg: str) -> None:
        module, _, name = arg.partition(" ")
        args = [self._consumed(item) for item in self._pop_mark()]
        func = self._consumed(self._import(module, name))
        self._check_call(func, tuple(args), new=not args)
        self._push(_Call(func, tuple(args)))

    # -- calls and BUILD ------------------------------------------------------------------------

    def _op_REDUCE(self, _arg: None) -> None:
        args = self._pop()
        func = self._pop()
        if isinstance(args, _WrapperReconstructArgs) and isinstance(func, _Global) \
                and func.is_("copyreg", "_reconstructor"):
            self._push(_ArrayWrapper({}))  # object.__new__(NumpyArrayWrapper): no attributes yet
            return
        self._check_call(func, args)
        self._push(_Call(self._consumed(func), self._consumed(args)))

    def _op_NEWOBJ(self, _arg: None) -> None:
        args = self._pop()
        cls = self._pop()
        if self._is_wrapper_class(cls) and args == ():
            self._push(_ArrayWrapper({}))
            return
        self._check_call(cls, args, new=True)
        self._push(_Call(self._consumed(cls), self._consumed(args)))

    def _op_NEWOBJ_EX(self, _arg: None) -> None:
        kwargs = self._consumed(self._pop())
        args = self._consumed(self._pop())
        cls = self._consumed(self._pop())
        self._check_call(cls, () if args == () and not kwargs else (args, kwargs), new=True)
        self._push(_Call(cls, (args, kwargs)))

    def _op_OBJ(self, _arg: None) -> None:
        items = [self._consumed(item) for item in self._pop_mark()]
        if not items:
            raise _Damaged("an OBJ opcode without a class")
        self._check_call(items[0], tuple(items[1:]), new=len(items) == 1)
        self._push(_Call(items[0], tuple(items[1:])))

    def _op_BUILD(self, _arg: None) -> None:
        state = self._consumed(self._pop())
        instance = self._top()
        if isinstance(instance, _ArrayWrapper):
            self._build_array_wrapper(instance, state)
            return
        self._check_mutable(instance, "BUILD")
        _check_state_keys(state)
        if isinstance(instance, _Call):
            if isinstance(instance.func, _Global) and instance.func.is_("functools", "partial") \
                    and isinstance(state, tuple) and state:
                self._check_partial_function(state[0])
            instance.states.append(state)
            if isinstance(instance.func, _Global) \
                    and (instance.func.module, instance.func.name) in _NUMPY_DTYPE_GLOBALS:
                self._check_dtype_build(instance)

    def _check_dtype_build(self, call: _Call) -> None:
        """A dtype's BUILD, done on a copy the way numpy's unpickling would (numpy code on the file's
        literals, no array involved), must give a dtype numpy would build itself (see _dtype_problem)."""
        if len(call.states) > 1:
            raise _ScanProblem("a second BUILD on a numpy dtype")
        problem = _dtype_problem(_resolve_dtype(call, 0, what="a numpy dtype"))
        if problem:
            raise _ScanProblem(f"a numpy dtype that numpy would not build ({problem})")

    # -- joblib arrays --------------------------------------------------------------------------

    def _build_array_wrapper(self, wrapper: _ArrayWrapper, state: object) -> None:
        """Do what joblib's NumpyUnpickler.load_build does: set the state, then read the array."""
        if not self.reads_joblib_arrays:
            raise _ScanProblem("a joblib array wrapper inside an object array, which joblib never writes")
        wrapper.attributes.update(_wrapper_state(state))
        self.stack[-1] = _Opaque()  # joblib replaces the wrapper with the array it reads
        self.findings.read_joblib_array = True
        self._skip_joblib_array(wrapper.attributes)

    def _skip_joblib_array(self, attributes: dict) -> None:
        """Consume exactly the bytes NumpyArrayWrapper.read_array will read (joblib/numpy_pickle.py)."""
        if "shape" not in attributes or "dtype" not in attributes:
            raise _ScanProblem("a joblib array wrapper without a shape or dtype")
        dtype = _resolve_dtype(attributes["dtype"], 0)
        count = _element_count(attributes["shape"])
        if dtype.hasobject:
            # An object array is a nested pickle read by a fresh unpickler from the same file.
            nested = _OpcodeWalk(self.raw, self.findings, self.policy, reads_joblib_arrays=False)
            nested.run()
            return
        # Files from joblib <= 1.1 have no alignment attribute and no padding.
        if attributes.get("numpy_array_alignment_bytes") is not None:
            padding = self.raw.read(1)
            if not padding:
                raise _Damaged("the data ends before a joblib array: the file looks truncated")
            _skip_exactly(self.raw, padding[0], "a joblib array's padding")
        if dtype.itemsize == 0:
            raise _ScanProblem("a joblib array with a zero-size dtype, which joblib cannot read")
        _skip_exactly(self.raw, count * dtype.itemsize, "a joblib array")

    # -- literals -------------------------------------------------------------------------------

    def _op_PROTO(self, protocol: int) -> None:
        if not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise _Damaged(f"unsupported pickle protocol {protocol}")
        if self.opcodes_read == 1 and protocol >= 2 and self.reads_joblib_arrays:
            self.findings.protocol_header = True

    def _op_FRAME(self, size: int) -> None:
        self.reader.start_frame(size)

    def _push_literal(self, arg: object) -> None:
        self._push(self._literal(arg))

    _op_INT = _op_BININT = _op_BININT1 = _op_BININT2 = _push_literal
    _op_LONG = _op_LONG1 = _op_LONG4 = _op_FLOAT = _op_BINFLOAT = _push_literal
    _op_BINBYTES = _op_SHORT_BINBYTES = _op_BINBYTES8 = _op_BYTEARRAY8 = _push_literal
    _op_UNICODE = _op_BINUNICODE = _op_SHORT_BINUNICODE = _op_BINUNICODE8 = _push_literal

    def _push_python2_string(self, arg: str) -> None:
        # pickle decodes Python 2 strings as ASCII by default; other bytes make it fail.
        self._push(self._literal(arg) if isinstance(arg, str) and arg.isascii() else _Opaque())

    _op_STRING = _op_BINSTRING = _op_SHORT_BINSTRING = _push_python2_string

    def _op_NONE(self, _arg: None) -> None:
        self._push(None)

    def _op_NEWTRUE(self, _arg: None) -> None:
        self._push(True)

    def _op_NEWFALSE(self, _arg: None) -> None:
        self._push(False)

    def _op_NEXT_BUFFER(self, _arg: None) -> None:
        self._push(_Opaque())

    def _op_READONLY_BUFFER(self, _arg: None) -> None:
        self._top()

    # -- containers -----------------------------------------------------------------------------

    def _tuple(self, items: list) -> object:
        if any(self._is_wrapper_class(item) for item in items):
            reconstructs_wrapper = (len(items) == 3 and isinstance(items[1], _Global)
                                    and items[1].is_("builtins", "object") and items[2] is None)
            if not reconstructs_wrapper:
                raise _ScanProblem("a joblib array wrapper is used in a way joblib never writes")
            return _WrapperReconstructArgs()
        return tuple(self._consumed(item) for item in items)

    def _op_EMPTY_TUPLE(self, _arg: None) -> None:
        self._push(())

    def _op_TUPLE(self, _arg: None) -> None:
        self._push(self._tuple(self._pop_mark()))

    def _op_TUPLE1(self, _arg: None) -> None:
        self._push(self._tuple([self._pop()]))

    def _op_TUPLE2(self, _arg: None) -> None:
        second = self._pop()
        self._push(self._tuple([self._pop(), second]))

    def _op_TUPLE3(self, _arg: None) -> None:
        third = self._pop()
        second = self._pop()
        self._push(self._tuple([self._pop(), second, third]))

    def _op_EMPTY_LIST(self, _arg: None) -> None:
        self._push([])

    def _op_LIST(self, _arg: None) -> None:
        self._push([self._consumed(item) for item in self._pop_mark()])

    def _op_APPEND(self, _arg: None) -> None:
        value = self._consumed(self._pop())
        target = self._top()
        self._check_mutable(target, "APPEND")
        if isinstance(target, list):
            target.append(value)

    def _op_APPENDS(self, _arg: None) -> None:
        items = [self._consumed(item) for item in self._pop_mark()]
        target = self._top()
        self._check_mutable(target, "APPENDS")
        if isinstance(target, list):
            target.extend(items)

    def _op_EMPTY_DICT(self, _arg: None) -> None:
        self._push({})

    def _op_DICT(self, _arg: None) -> None:
        mapping: dict = {}
        self._set_items(mapping, self._pop_mark())
        self._push(mapping)

    def _op_SETITEM(self, _arg: None) -> None:
        value = self._pop()
        key = self._pop()
        self._set_items(self._top(), [key, value])

    def _op_SETITEMS(self, _arg: None) -> None:
        items = self._pop_mark()
        self._set_items(self._top(), items)

    def _set_items(self, target: object, items: list) -> None:
        if len(items) % 2:
            raise _Damaged("a dictionary with a key but no value")
        items = [self._consumed(item) for item in items]
        self._check_mutable(target, "SETITEM")
        if isinstance(target, dict):
            try:
                target.update(zip(items[::2], items[1::2]))
            except TypeError as error:  # an unhashable key; pickle fails there too
                raise _ScanProblem(f"a dictionary key pickle cannot use: {error}") from error

    def _op_EMPTY_SET(self, _arg: None) -> None:
        self._push(set())

    def _op_ADDITEMS(self, _arg: None) -> None:
        items = [self._consumed(item) for item in self._pop_mark()]
        target = self._top()
        self._check_mutable(target, "ADDITEMS")
        if isinstance(target, set):
            target.update(_hashable(items))

    def _op_FROZENSET(self, _arg: None) -> None:
        self._push(frozenset(_hashable([self._consumed(item) for item in self._pop_mark()])))

    # -- stack and memo -------------------------------------------------------------------------

    def _op_MARK(self, _arg: None) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def _op_POP(self, _arg: None) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    def _op_POP_MARK(self, _arg: None) -> None:
        self._pop_mark()

    def _op_DUP(self, _arg: None) -> None:
        self._push(self._reused(self._top()))

    def _memo_put(self, index: int) -> None:
        if index < 0:
            raise _Damaged("a negative memo index")
        self.memo[index] = self._top()

    _op_PUT = _op_BINPUT = _op_LONG_BINPUT = _memo_put

    def _op_MEMOIZE(self, _arg: None) -> None:
        self.memo[len(self.memo)] = self._top()

    def _memo_get(self, index: int) -> None:
        if index not in self.memo:
            raise _Damaged(f"a memo lookup of index {index}, which was never stored")
        self._push(self._reused(self.memo[index]))

    _op_GET = _op_BINGET = _op_LONG_BINGET = _memo_get

    def _reused(self, value: object) -> object:
        if isinstance(value, _ArrayWrapper):
            raise _ScanProblem("a joblib array wrapper used twice, which joblib never writes")
        return value

    # -- opcodes that reach outside the file ----------------------------------------------------

    def _op_PERSID(self, _arg: object) -> None:
        raise _ScanProblem("a persistent id: the file refers to objects stored outside it")

    _op_BINPERSID = _op_PERSID

    def _op_EXT1(self, _arg: object) -> None:
        raise _ScanProblem("an extension-registry code: what it imports depends on the running program")

    _op_EXT2 = _op_EXT4 = _op_EXT1


def _scan_tier(module: str, name: str, policy: _Policy) -> str | None:
    """The tier of a global the file names, resolving it (importing a module of an allowed package,
    as loading would) when the name alone does not decide. A name that does not resolve is "unknown":
    loading resolves it again and judges it, or fails."""
    if _is_refused_global(module, name, policy):
        return None
    if _within(_python3_global(module, name)[0], policy.user):
        return "trusted"  # the user's module is not imported by the scan; the loader checks the object
    try:
        resolved = _resolve(module, name)
    except Exception:  # a name this environment lacks (another library version)
        return "unknown"
    return _tier(resolved, module, name, policy)


def _value_spelling(value: object) -> str:
    if isinstance(value, _Global):
        return value.spelled
    if isinstance(value, _Call):
        return _call_spelling(value.func)
    return "a value" if value is None or isinstance(value, (_Opaque, str, bytes, int, float)) \
        else f"a {type(value).__name__}"


def _call_spelling(func: object) -> str:
    """How a refused call is named: ``numpy.log1p(...)`` (a value-only global called) or
    ``sklearn.x.f(...)(...)`` (the result of a call, called)."""
    return f"{_value_spelling(func)}(...)"


# Attributes whose value a meta-estimator or scorer calls by name: getattr(estimator, value)(X).
_DISPATCH_ATTRIBUTES = frozenset({"_response_method", "response_method", "stack_method_", "stack_method"})
_PREDICTION_METHODS = frozenset({"predict", "predict_proba", "predict_log_proba", "decision_function",
                                 "score_samples", "score", "transform", "auto"})


# Dunder attributes an object may carry in its own __dict__ (pandas' NaT has __module__): descriptive
# only. Any other (``__array_interface__``, ``__setstate__``, ``__sklearn_clone__``...) is looked up
# on the instance by numpy, pickle or scikit-learn, and would steer what they do.
_DESCRIPTIVE_DUNDERS = frozenset({"__module__", "__doc__", "__qualname__", "__name__", "__annotations__"})


def _is_dunder(key: object) -> bool:
    return isinstance(key, str) and key.startswith("__") and key.endswith("__") \
        and key not in _DESCRIPTIVE_DUNDERS


def _names_prediction_methods(value: object) -> bool:
    if value is None or (isinstance(value, str) and value in _PREDICTION_METHODS):
        return True
    return isinstance(value, (list, tuple)) and all(_names_prediction_methods(item) for item in value
                                                    if not isinstance(item, (list, tuple)))


def _check_state_keys(state: object) -> None:
    """What a BUILD may set: no dunder attribute (``__class__`` would change what the object is, and
    numpy reads ``__array_interface__``/``__array_struct__``/``__array__`` from the instance), and
    only prediction methods in the attributes that name a method to call."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, dict):
            for key, value in part.items():
                if _is_dunder(key):
                    raise _ScanProblem(f"a state that sets {key} on an object")
                if key in _DISPATCH_ATTRIBUTES and not isinstance(value, (_Call, _Opaque)) \
                        and not _names_prediction_methods(value):
                    raise _ScanProblem(f"a state that sets {key} to {value!r:.60}, not a prediction method")


def _hashable(items: list) -> list:
    for item in items:
        try:
            hash(item)
        except TypeError as error:
            raise _ScanProblem(f"a set member pickle cannot use: {error}") from error
    return items


def _wrapper_state(state: object) -> dict:
    """The attributes a BUILD gives a NumpyArrayWrapper, as pickle._Unpickler.load_build sets them.

    Only the attributes joblib writes, under plain string keys, are accepted: a key such as
    ``__class__`` (set through the slot-state half of the tuple) would change what the object is.
    """
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
    attributes: dict = {}
    for part in parts:
        if not part:
            continue
        if not isinstance(part, dict) or not all(type(key) is str and key in _WRAPPER_ATTRIBUTES
                                                 for key in part):
            raise _ScanProblem("a joblib array wrapper with a state joblib never writes")
        attributes.update(part)
    return attributes


def _element_count(shape: object) -> int:
    """How many elements joblib will read for ``shape``, or a problem when it is not a plain shape."""
    if not isinstance(shape, (tuple, list)) or not all(isinstance(size, int) for size in shape):
        raise _ScanProblem("a joblib array whose shape is not a tuple of integers")
    count = 1
    for size in shape:
        if size < 0:
            raise _ScanProblem("a joblib array with a negative dimension")
        count *= size
    if count >= 2**63:
        raise _ScanProblem("a joblib array too large for numpy")
    return count


def _resolve_dtype(value: object, depth: int, what: str = "a joblib array"):
    """Rebuild the numpy dtype a pickle describes, from literals only, as numpy's unpickling would.

    ``numpy.dtype(spec, align, copy)`` then ``__setstate__(state)``; nested dtypes (structured arrays)
    are rebuilt the same way. ``copy`` is forced to True so that no shared builtin dtype is changed.
    """
    import numpy

    if depth > _MAX_DTYPE_NESTING:
        raise _ScanProblem(f"{what} dtype nested too deeply")
    if not (isinstance(value, _Call) and isinstance(value.func, _Global)
            and (value.func.module, value.func.name) in _NUMPY_DTYPE_GLOBALS):
        raise _ScanProblem(f"{what} whose dtype is not a plain numpy dtype")
    args = value.args
    if not (isinstance(args, tuple) and 1 <= len(args) <= 3 and isinstance(args[0], str)
            and all(isinstance(arg, (bool, int)) for arg in args[1:])):
        raise _ScanProblem(f"{what} whose dtype is not a plain numpy dtype")
    try:
        dtype = numpy.dtype(args[0], bool(args[1]) if len(args) > 1 else False, True)
        for state in value.states:
            dtype.__setstate__(_dtype_state(state, depth + 1, what))
    except _ScanProblem:
        raise
    except Exception as error:  # numpy rejects the description: so would the loader
        raise _ScanProblem(f"{what} with an invalid dtype: {error}") from error
    return dtype


def _dtype_state(value: object, depth: int, what: str = "a joblib array") -> object:
    """A dtype's pickled state with nested dtype descriptions rebuilt; only literals are accepted."""
    if depth > _MAX_DTYPE_NESTING:
        raise _ScanProblem(f"{what} dtype nested too deeply")
    if value is None or isinstance(value, (str, bytes, int, float)):
        return value
    if isinstance(value, tuple):
        return tuple(_dtype_state(item, depth + 1, what) for item in value)
    if isinstance(value, list):
        return [_dtype_state(item, depth + 1, what) for item in value]
    if isinstance(value, dict):
        return {key: _dtype_state(item, depth + 1, what) for key, item in value.items()}
    if isinstance(value, _Call) and isinstance(value.func, _Global) and value.func.is_("_codecs", "encode"):
        # protocols 0-2 spell bytes (a datetime64 unit, "ns") as _codecs.encode(text, "latin1")
        args = value.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1" \
                and not value.states:
            return args[0].encode("latin1")
        raise _ScanProblem(f"{what} whose dtype is not a plain numpy dtype")
    if isinstance(value, _Call):
        return _resolve_dtype(value, depth + 1, what)
    raise _ScanProblem(f"{what} whose dtype is not a plain numpy dtype")


# --------------------------------------------------------------------------------------------------
# Scanning files


def _describe_parse_error(error: Exception, stream: BinaryIO) -> tuple[str, bool]:
    """Why the walk stopped, and whether that means the file is damaged (cut short, corrupt)."""
    if isinstance(error, _ScanProblem):
        return str(error), isinstance(error, _Damaged)
    if isinstance(error, EOFError):
        return "the compressed data ends early: the file looks truncated", True
    if isinstance(error, (zlib.error, lzma.LZMAError, OSError)):
        return f"the compressed data is corrupt ({error})", True
    if _exhausted(stream):
        return "the data ends before the pickle's STOP opcode: the file looks truncated", True
    return f"the pickle data is malformed ({type(error).__name__}: {error})", True


def _exhausted(stream: BinaryIO) -> bool:
    try:
        return stream.read(1) == b""
    except Exception:  # a stream that fails again is not known to be at its end
        return False


def _scan_pickle_stream(stream: BinaryIO, container: str, policy: _Policy) -> ScanVerdict:
    findings = _Findings()
    problem, damaged = None, False
    try:
        _OpcodeWalk(stream, findings, policy, reads_joblib_arrays=True).run()
    except Exception as error:  # whatever stops the walk, the file is not vouched for
        problem, damaged = _describe_parse_error(error, stream)
        # Compressed data that is valid but ends early (EOFError) is a truncated file, not garbage.
        if not findings.looks_like_pickle and not isinstance(error, EOFError):
            raise _NotAModel(problem) from error
    if container == "pickle" and findings.read_joblib_array:
        container = "joblib"
    return ScanVerdict(safe=not findings.refused and problem is None, refused=sorted(findings.refused),
                       imports=sorted(findings.imports), container=container, problem=problem,
                       damaged=damaged)


def _is_refused_type_name(type_name: str, policy: _Policy) -> bool:
    """A type skops does not trust by itself, judged like a pickle global. skops never calls a
    function it loads (it builds objects with ``cls.__new__`` and ``__setstate__``), so a value-only
    function is as good as a class here."""
    module, _, name = type_name.rpartition(".")
    return not module or _scan_tier(module, name, policy) is None


def _scan_skops(path: str, policy: _Policy) -> ScanVerdict:
    try:
        with zipfile.ZipFile(path) as archive:
            is_skops = "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise _NotAModel(f"a damaged zip archive ({error})") from error
    if not is_skops:
        raise _NotAModel("a zip archive without a skops schema")
    import skops.io

    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)))
    except Exception as error:  # skops cannot read its own schema: nothing is vouched for
        return ScanVerdict(safe=False, refused=[], imports=[], container="skops",
                           problem=f"skops cannot read the file ({type(error).__name__}: {error})")
    refused = [type_name for type_name in untrusted if _is_refused_type_name(type_name, policy)]
    return ScanVerdict(safe=not refused, refused=refused, imports=untrusted, container="skops", problem=None)


def _scan_opened_file(file: BinaryIO, label: str, policy: _Policy) -> ScanVerdict:
    """Scan an open model file from its start; the loader reuses the same open file afterwards."""
    head = file.read(8)
    file.seek(0)
    try:
        if head.startswith(_ZIP_MAGICS):
            return _scan_skops(label, policy)
        if head.startswith(_JOBLIB_BEFORE_0_10_MAGIC):
            return ScanVerdict(False, [], [], "joblib", _JOBLIB_BEFORE_0_10_PROBLEM)
        if head.startswith(_LZ4_MAGIC):
            return ScanVerdict(False, [], [], "joblib", "lz4-compressed joblib files are not supported")
        container = _container_of(head)
        return _scan_pickle_stream(_pickle_stream(file, container), container, policy)
    except _NotAModel as error:
        raise BadInput(f"{label} is not a model file: {error}", _NOT_A_MODEL_HINT) from error


@contextmanager
def _open_model_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    label = os.fspath(path)
    if not os.path.exists(label):
        raise BadInput(f"model file not found: {label}", "check the path")
    if os.path.isdir(label):
        raise BadInput(f"{label} is a directory, not a model file", _NOT_A_MODEL_HINT)
    try:
        file = open(label, "rb")
    except OSError as error:
        raise BadInput(f"cannot read {label}: {error.strerror or error}",
                       "check the file's permissions") from error
    with file:
        try:
            empty = not file.peek(1)
        except OSError as error:  # opened, but reading fails (EIO, a network share gone...)
            raise BadInput(f"cannot read {label}: {error.strerror or error}",
                           "check the file and the disk it is on") from error
        if empty:
            raise BadInput(f"{label} is empty, not a model file", _NOT_A_MODEL_HINT)
        yield file


def scan_model_file(path: str | os.PathLike, *, allow: Sequence[str] = ()) -> ScanVerdict:
    """Read the file's opcodes without executing anything. Raises BadInput for a missing file,
    a directory, an empty file or bytes that are not a pickle/joblib/skops file at all."""
    policy = _policy(allow)
    with _open_model_file(path) as file:
        return _scan_opened_file(file, os.fspath(path), policy)


# --------------------------------------------------------------------------------------------------
# Loading with the same rule enforced by the unpickler


class _RefusedImport(pickle.UnpicklingError):
    """The loader refused a global, a call or a change while loading."""


class _GuardedUnpickling:
    """The loader's own line of defence, mixed into pickle's pure-Python unpickler and joblib's.

    ``find_class`` applies the allowlist to the name and to the object it resolves to, and records
    every object it hands out with its tier. The opcodes that call or change something are then
    checked on the real objects, whatever the scan made of the file:

    * REDUCE, INST, OBJ call only a class or rebuild function that find_class handed out; NEWOBJ and
      NEWOBJ_EX only a class. The result of a call is never called, nor a value-only function.
    * No callable argument of a call is something the file made (a callable instance): only objects
      find_class handed out. Rebuild functions that call an argument (numpy's random state
      constructors) or keep one (functools.partial) can thus reach nothing but allowed globals.
    * BUILD, SETITEM(S), APPEND(S) and ADDITEMS never change an object find_class handed out (a class
      or function shared by the whole program), and BUILD sets no dunder attribute. The method they
      call (``__setstate__``, ``append``, ``extend``, ``add``) must be the object's own, not a callable
      its data supplies (a Bunch answers ``bunch.extend`` from its keys; an instance attribute
      shadows a method).
    * Once the file is loaded, every object a call made is looked at (:meth:`_audit_made_objects`),
      so that what a constructor did with the file's arguments is checked too.

    Every refusal is also recorded, so that a refusal some library code might catch and swallow
    during loading still stops the load.
    """

    _policy: _Policy
    refused: list[str]
    _handed_out: dict[int, tuple[object, str, str]]  # id -> (object, tier, spelling)

    def _init_guard(self, policy: _Policy) -> None:
        self._policy = policy
        self.refused = []
        self._handed_out = {}
        self._made: list[object] = []  # every object a call made, in order
        self._last_callee: object = None
        # dtypes a numpy.dtype call made that no BUILD changed yet and nothing uses yet, by id
        self._buildable_dtypes: dict[int, object] = {}

    def load(self) -> object:
        result = super().load()
        self._audit_made_objects()
        return result

    def _audit_made_objects(self) -> None:
        """Refuse objects whose attributes would steer the model's own code at prediction time.

        * No dunder attribute (``__array_interface__`` makes numpy read any address; ``__array__``,
          ``__class__``...), set by BUILD or by a constructor, nor a dunder key in a dict subclass
          that serves its keys as attributes (sklearn's Bunch).
        * Attributes that name the method a meta-estimator or scorer calls by name
          (``getattr(estimator, name)(X)``: scorers' ``_response_method``, stacking's
          ``stack_method_``) may only name prediction methods, never ``to_csv`` or ``__init__``.
        """
        for made in self._made:
            try:
                attributes = made.__dict__ if not isinstance(made, type) else None
            except Exception:  # no __dict__, or one that fails: nothing set on it by name
                attributes = None
            if isinstance(attributes, dict):
                for key, value in attributes.items():
                    if _is_dunder(key):
                        self._refuse(f"an attribute {key} on {type(made).__name__}")
                    if key in _DISPATCH_ATTRIBUTES and not _names_prediction_methods(value):
                        self._refuse(f"a {type(made).__name__} told to call {value!r:.60} by name ({key})")
            if isinstance(made, dict) and getattr(type(made), "__getattr__", None) is not None:
                for key in made:
                    if _is_dunder(key):
                        self._refuse(f"a key {key} on {type(made).__name__}")

    def find_class(self, module: str, name: str) -> object:
        spelled = f"{module}.{name}"
        if _is_refused_global(module, name, self._policy):
            self._refuse(spelled)
        resolved = super().find_class(module, name)
        tier = _tier(resolved, module, name, self._policy)
        if tier is None:
            self._refuse(spelled)
        self._handed_out.setdefault(id(resolved), (resolved, tier, spelled))
        return resolved

    def get_extension(self, code: int) -> None:
        # The extension registry can hand out a cached object without calling find_class.
        self._refuse(f"copyreg extension {code}")

    def _refuse(self, spelled: str) -> None:
        self.refused.append(spelled)
        raise _RefusedImport(f"refused {spelled}")

    # -- checks on real objects -----------------------------------------------------------------

    def _tier_of(self, value: object) -> str | None:
        entry = self._handed_out.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def _spelling(self, value: object) -> str:
        entry = self._handed_out.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[2]
        return f"a {type(value).__name__} made by the file"

    def _check_call(self, func: object, args: object, kwargs: object = None, *, new: bool = False) -> None:
        """REDUCE, INST and OBJ (``new`` False) may call a constructor or a rebuild function;
        NEWOBJ(_EX) (``new`` True) only makes a class with __new__: with arguments, only a class whose
        __new__ ignores them or an allowed constructor."""
        arguments = list(args) if isinstance(args, (tuple, list)) else []
        if isinstance(kwargs, dict):
            arguments.extend(kwargs.values())
        tier = self._tier_of(func)
        allowed = (_BARE_CLASS_TIERS if not arguments else _CLASS_TIERS) if new else _CALLABLE_TIERS
        if tier not in allowed or (new and not isinstance(func, type)):
            self._refuse(f"{self._spelling(func)}(...)" if tier is not None
                         else f"{self._spelling(func)}, called")
        if new and tier == "class":
            return  # object.__new__ (or a namedtuple's) keeps the arguments as plain values
        self._check_arguments(func, tier, arguments)

    def _check_arguments(self, func: object, tier: str | None, arguments: list) -> None:
        """What a call may be given, on the real objects.

        * A callable argument is an allowed global, never something the file made (a callable
          instance). A class argument is an allowed constructor or a plain type, except where the
          callee only uses it with ``__new__`` or checks what it is (:data:`_CLASS_ARGUMENTS`); a
          function argument is a rebuild function (numpy's random-state constructors call theirs),
          except in functools.partial, which may also hold a value-only function.
        * No argument is a range longer than :data:`_MAX_RANGE` (``set(range(10**12))``).
        * bytes and bytearray get text or bytes, never a size; numpy.dtype gets a text description
          (its copy flag set, so that no shared dtype is ever changed by a BUILD); numpy's
          reconstructors are given a small shape (the real data comes with the state).
        """
        origin = _origin(func)
        spelled = self._spelling(func)
        is_partial = func is functools.partial
        for position, argument in enumerate(arguments):
            if isinstance(argument, range) and len(argument) > _MAX_RANGE:
                self._refuse(f"{spelled}(range({len(argument)}))")
            if not callable(argument):
                continue
            argument_tier = self._tier_of(argument)
            if argument_tier is None:
                self._refuse(f"{spelled}({self._spelling(argument)})")
            if tier == "trusted":
                continue  # the user's own function, judged by the user
            if isinstance(argument, type):
                if argument_tier in ("constructor", "trusted") or _is_plain_type(argument) \
                        or _class_argument_allowed(origin, position, argument):
                    continue
            elif argument_tier in ("rebuild", "trusted") or (is_partial and argument_tier == "value"):
                continue
            self._refuse(f"{spelled}({self._spelling(argument)})")
        if func is bytes or func is bytearray:
            if not all(isinstance(argument, (str, bytes, bytearray)) for argument in arguments):
                self._refuse(f"{spelled}({', '.join(type(argument).__name__ for argument in arguments)})")
        elif origin == ("numpy", "dtype"):
            if not (1 <= len(arguments) <= 3 and isinstance(arguments[0], str) and len(arguments) == 3
                    and all(isinstance(flag, int) for flag in arguments[1:]) and arguments[2]):
                self._refuse(f"{spelled}(...) from anything but its pickled description")
        elif origin in _SHAPED_RECONSTRUCTORS:
            index = _SHAPED_RECONSTRUCTORS[origin]
            shape = arguments[index] if len(arguments) > index else None
            if not _is_small_shape(shape):
                self._refuse(f"{spelled}(...) with shape {shape!r:.60}")
        elif origin == ("collections", "defaultdict") and arguments and arguments[0] is not None:
            if not (_is_plain_type(arguments[0]) or self._tier_of(arguments[0]) == "constructor"):
                self._refuse(f"{spelled}({self._spelling(arguments[0])})")

    def _after_made(self, made: object) -> None:
        """A dtype a numpy.dtype call made is checked, and is the only kind of dtype a BUILD may
        change (once, before anything uses it)."""
        dtype_type = _numpy_dtype_type()
        if dtype_type is not None and isinstance(made, dtype_type):
            self._check_dtype(made)
            if self._last_callee is dtype_type:
                self._buildable_dtypes[id(made)] = made

    def _check_dtype(self, dtype: object) -> None:
        problem = _dtype_problem(dtype)
        if problem:
            self._refuse(f"a numpy dtype that numpy would not build ({problem})")

    def _seal_dtypes(self, value: object, depth: int = 0) -> None:
        """Record the dtypes a call or a state is given: from then on, no BUILD may change them (an
        array made with a dtype would keep its buffer while the dtype grew fields or lost its flags)."""
        dtype_type = _numpy_dtype_type()
        if dtype_type is None or depth > 4:
            return
        if isinstance(value, dtype_type):
            self._buildable_dtypes.pop(id(value), None)
        elif isinstance(value, (tuple, list)):
            for item in value[:_SEAL_SCAN_ITEMS]:
                self._seal_dtypes(item, depth + 1)
        elif isinstance(value, dict):
            for count, item in enumerate(value.values()):
                if count >= _SEAL_SCAN_ITEMS:
                    break
                self._seal_dtypes(item, depth + 1)

    def _check_target(self, target: object, opcode: str, methods: tuple[str, ...] = ()) -> None:
        if self._tier_of(target) is not None:
            self._refuse(f"{opcode} on {self._spelling(target)}")
        for name in methods:  # the first one pickle finds is the one it calls
            try:
                method = getattr(target, name, None)
            except Exception:  # pickle's own lookup fails the same way
                return
            if method is None:
                continue
            if getattr(method, "__self__", None) is not target:
                self._refuse(f"{opcode} on a {type(target).__name__} whose {name} is not its own method")
            return

    def _check_container(self, target: object, opcode: str) -> None:
        """SETITEM(S) only fill a dict (OrderedDict, Bunch...), APPEND(S) a list, ADDITEMS a set, each
        with the container's own method: never ``array[key] = value`` or another object's code."""
        self._check_target(target, opcode)
        kind, methods = _container_opcodes()[opcode]
        if not isinstance(target, kind) or not all(
                getattr(type(target), name, None) in allowed for name, allowed in methods.items()):
            self._refuse(f"{opcode} on a {type(target).__name__}")

    def _check_build(self, inst: object, state: object) -> None:
        self._check_target(inst, "BUILD", ("__setstate__",))
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, dict):
                for key in part:
                    if _is_dunder(key):
                        self._refuse(f"an attribute {key} on {type(inst).__name__}")
        if isinstance(inst, functools.partial) and isinstance(state, tuple) and state:
            self._check_arguments(functools.partial, "constructor", [state[0]])
        dtype_type = _numpy_dtype_type()
        if dtype_type is not None and isinstance(inst, dtype_type):
            if self._buildable_dtypes.pop(id(inst), None) is not inst:
                self._refuse("a BUILD on a numpy dtype that is shared, already in use or already built")
        self._seal_dtypes(state)

    def _after_build(self, inst: object) -> None:
        dtype_type = _numpy_dtype_type()
        if dtype_type is not None and isinstance(inst, dtype_type):
            self._check_dtype(inst)

    def _mark_target(self) -> object:
        """The object below the topmost MARK: what SETITEMS, APPENDS and ADDITEMS change."""
        if self.metastack and self.metastack[-1]:
            return self.metastack[-1][-1]
        return None

    def _instantiate(self, klass: object, args: list) -> None:  # INST and OBJ
        # pickle calls klass(*args) unless there are no arguments and klass is a class without
        # __getinitargs__; then it calls klass.__new__(klass), like NEWOBJ.
        calls = bool(args) or not isinstance(klass, type) or hasattr(klass, "__getinitargs__")
        self._check_call(klass, args, new=not calls)
        self._seal_dtypes(args)
        self._last_callee = klass
        super()._instantiate(klass, args)
        self._made.append(self.stack[-1])
        self._after_made(self.stack[-1])


_MAX_RANGE = 1 << 16  # a range a call may be given (the benign corpus passes none to a call)
_MAX_RECONSTRUCT_ELEMENTS = 1 << 16  # numpy's reconstructors get (0,); the data comes with the state
_SEAL_SCAN_ITEMS = 64  # where a dtype given to a call or a state is looked for (numpy's own spots)

# Rebuild functions (by where they are defined) that are given a class and only make an instance of
# it with __new__, or check what it is: position -> (module, qualname) of the base class it must have
# (None: any class). Any other class argument must be an allowed constructor or a plain type.
_CLASS_ARGUMENTS: dict[tuple[str, str], dict[int, tuple[str, str] | None]] = {
    ("copyreg", "_reconstructor"): {0: None},  # object.__new__(cls); the base (1) is judged apart
    **{(module, "_reconstruct"): {0: ("numpy", "ndarray")}
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy.ma.core", "_mareconstruct"): {0: ("numpy", "ndarray"), 1: ("numpy", "ndarray")},
    ("numpy.random._pickle", "__bit_generator_ctor"): {0: ("numpy.random.bit_generator", "BitGenerator")},
    **{("pandas.core.indexes." + module, name): {0: ("pandas", "Index")} for module, name in (
        ("base", "_new_Index"), ("datetimes", "_new_DatetimeIndex"), ("period", "_new_PeriodIndex"),
        ("interval", "_new_IntervalIndex"), ("timedeltas", "_new_TimedeltaIndex"))},
    # cls.__new__(cls) with no arguments, like NEWOBJ.
    **{(module, "newObj"): {0: None} for module in (
        "sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree", "sklearn.metrics._dist_metrics")},
    ("numpy.core", "_DType_reconstruct"): {0: None}, ("numpy._core", "_DType_reconstruct"): {0: None},
}
# numpy's reconstructors that allocate an array of the shape they are given (position of the shape).
_SHAPED_RECONSTRUCTORS: dict[tuple[str, str], int] = {
    ("numpy.core.multiarray", "_reconstruct"): 1, ("numpy._core.multiarray", "_reconstruct"): 1,
    ("numpy.ma.core", "_mareconstruct"): 2,
}


def _class_argument_allowed(callee: tuple[str | None, str | None], position: int, argument: type) -> bool:
    module, qualname = callee
    if callee == ("copyreg", "_reconstructor") and position == 1:
        return argument is object  # any other base's __new__ and __init__ run with the state
    if qualname is not None and _CYTHON_UNPICKLE_HELPER.fullmatch(qualname) and module is not None \
            and _within(module, ALLOWED_ROOT_PACKAGES):
        return position == 0  # Cython's <Type>.__new__(cls) refuses a class that is not its own
    positions = _CLASS_ARGUMENTS.get(callee)  # type: ignore[arg-type]
    if positions is None or position not in positions:
        return False
    base = positions[position]
    if base is None:
        return True
    try:
        return issubclass(argument, _resolve(*base))
    except Exception:  # no such base in this environment, or a class that fails issubclass
        return False


def _is_plain_type(value: object) -> bool:
    import builtins

    return any(value is getattr(builtins, name) for name in _PLAIN_TYPES_NAMES)


def _is_small_shape(shape: object) -> bool:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(size, int) and size >= 0 for size in shape):
        return False
    count = 1
    for size in shape:
        count *= size
    return count <= _MAX_RECONSTRUCT_ELEMENTS


def _numpy_dtype_type() -> type | None:
    import sys

    numpy = sys.modules.get("numpy")  # a dtype can only exist once numpy is imported
    return numpy.dtype if numpy is not None else None


_CONTAINER_OPCODES: dict[str, tuple[type, dict[str, tuple]]] = {}


def _container_opcodes() -> dict[str, tuple[type, dict[str, tuple]]]:
    if not _CONTAINER_OPCODES:
        import collections

        setitem = {"__setitem__": (dict.__setitem__, collections.OrderedDict.__setitem__)}
        appends = {"append": (list.append,), "extend": (list.extend,)}
        _CONTAINER_OPCODES.update({
            "SETITEM": (dict, setitem), "SETITEMS": (dict, setitem),
            "APPEND": (list, appends), "APPENDS": (list, appends),
            "ADDITEMS": (set, {"update": (set.update,), "add": (set.add,)}),
        })
    return _CONTAINER_OPCODES


def _dtype_problem(dtype, depth: int = 0) -> str | None:
    """Why ``dtype`` is not one numpy itself would build from its public description, or None.

    A BUILD (``dtype.__setstate__``) sets a dtype's flags, item size, alignment and fields from the
    file, and numpy checks little of it: an object dtype whose flags say it holds no objects makes
    numpy read raw file bytes as pointers; a field beyond the item size reads or writes outside the
    array's buffer. So the dtype is rebuilt from its description (its type string; for a structured
    dtype, its fields' dtypes, offsets and item size; for a subarray, its base and shape), and the
    two must agree on flags, objects, item size and alignment, and every field must lie inside.
    """
    import numpy

    if depth > _MAX_DTYPE_NESTING:
        return "nested too deeply"
    try:
        if dtype.names is not None:
            fields = dtype.fields
            formats, offsets, titles = [], [], []
            for name in dtype.names:
                field = fields[name]
                sub, offset = field[0], field[1]
                problem = _dtype_problem(sub, depth + 1)
                if problem:
                    return problem
                if not isinstance(offset, int) or offset < 0 or offset + sub.itemsize > dtype.itemsize:
                    return f"field {name!r} lies outside its {dtype.itemsize}-byte item"
                formats.append(sub)
                offsets.append(offset)
                titles.append(field[2] if len(field) > 2 else None)
            fresh = numpy.dtype({"names": list(dtype.names), "formats": formats, "offsets": offsets,
                                 "titles": titles, "itemsize": dtype.itemsize}, align=dtype.isalignedstruct)
            if len(fields) != len(dtype.names) + sum(title is not None for title in titles):
                return "fields that its names do not list"
        elif dtype.subdtype is not None:
            base, shape = dtype.subdtype
            problem = _dtype_problem(base, depth + 1)
            if problem:
                return problem
            fresh = numpy.dtype((base, shape))
        else:
            if dtype.fields is not None:
                return "fields without names"
            fresh = numpy.dtype(dtype.str)
    except Exception as error:  # numpy cannot rebuild it from its own description
        return f"{type(error).__name__}: {error}"
    for attribute in ("flags", "hasobject", "itemsize", "alignment", "kind", "char", "byteorder"):
        if getattr(fresh, attribute) != getattr(dtype, attribute):
            return f"its {attribute} is {getattr(dtype, attribute)!r}, not {getattr(fresh, attribute)!r}"
    if fresh != dtype:
        return f"it does not match {fresh}"
    return None


def _guarded_dispatch(dispatch: dict) -> dict:
    """A copy of an unpickler's dispatch table whose calling and changing opcodes check first."""
    guarded = dict(dispatch)

    def guard(opcode: bytes, check: Callable[[_GuardedUnpickling], None]) -> None:
        original = dispatch[opcode[0]]
        makes = opcode in (pickle.REDUCE, pickle.NEWOBJ, pickle.NEWOBJ_EX)
        builds = opcode == pickle.BUILD

        def checked(self: _GuardedUnpickling) -> None:
            if len(self.stack) >= 2 or opcode in (pickle.SETITEMS, pickle.APPENDS, pickle.ADDITEMS):
                check(self)
            inst = self.stack[-2] if builds and len(self.stack) >= 2 else None
            original(self)
            if makes:
                self._made.append(self.stack[-1])
                self._after_made(self.stack[-1])
            elif builds:
                self._after_build(inst)

        guarded[opcode[0]] = checked

    def call(self: _GuardedUnpickling, func: object, args: object, kwargs: object = None, *,
             new: bool = False) -> None:
        self._check_call(func, args, kwargs, new=new)
        self._seal_dtypes(args)
        self._seal_dtypes(kwargs)
        self._last_callee = func

    guard(pickle.REDUCE, lambda self: call(self, self.stack[-2], self.stack[-1]))
    guard(pickle.NEWOBJ, lambda self: call(self, self.stack[-2], self.stack[-1], new=True))
    guard(pickle.NEWOBJ_EX, lambda self: len(self.stack) >= 3 and call(
        self, self.stack[-3], self.stack[-2], self.stack[-1], new=True))
    guard(pickle.BUILD, lambda self: self._check_build(self.stack[-2], self.stack[-1]))
    guard(pickle.APPEND, lambda self: self._check_container(self.stack[-2], "APPEND"))
    guard(pickle.SETITEM, lambda self: len(self.stack) >= 3 and self._check_container(self.stack[-3], "SETITEM"))
    guard(pickle.SETITEMS, lambda self: self._check_container(self._mark_target(), "SETITEMS"))
    guard(pickle.APPENDS, lambda self: self._check_container(self._mark_target(), "APPENDS"))
    guard(pickle.ADDITEMS, lambda self: self._check_container(self._mark_target(), "ADDITEMS"))
    return guarded


class _RestrictedPickleUnpickler(_GuardedUnpickling, pickle._Unpickler):
    """pickle's pure-Python unpickler (its opcodes can be checked one by one), guarded."""

    dispatch = _guarded_dispatch(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, policy: _Policy):
        super().__init__(file)
        self._init_guard(policy)


@functools.cache
def _restricted_joblib_unpickler_class() -> type:
    """joblib's NumpyUnpickler, guarded (joblib is imported only when needed)."""
    from joblib.numpy_pickle import NumpyUnpickler

    class _RestrictedJoblibUnpickler(_GuardedUnpickling, NumpyUnpickler):
        dispatch = _guarded_dispatch(NumpyUnpickler.dispatch)

        def __init__(self, filename: str, file_handle: BinaryIO, policy: _Policy):
            super().__init__(filename, file_handle, ensure_native_byte_order=True)
            self._init_guard(policy)

    return _RestrictedJoblibUnpickler


def _refusal_message(label: str, refused: Sequence[str], problem: str | None) -> str:
    reasons = []
    if refused:
        reasons.append(f"it imports or calls {', '.join(refused)} (not on the allowlist)")
    if problem:
        reasons.append(f"the safety scan could not read it to the end: {problem}")
    return f"refused to load {label}: " + "; ".join(reasons)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _load_skops(path: str, trusted: list[str]) -> object:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=trusted)
    except UntrustedTypesFoundException as error:
        raise UnsafeModel(f"refused to load {path}: skops found types nobody trusted ({error})",
                          _TRUST_HINT) from error


def _load_checked(file: BinaryIO, label: str, verdict: ScanVerdict, policy: _Policy) -> object:
    """Load a file the scan passed, through an unpickler that enforces the allowlist again."""
    if verdict.container == "skops":
        return _load_skops(label, verdict.imports)
    if verdict.container == "pickle":
        unpickler = _RestrictedPickleUnpickler(file, policy)
    else:
        stream = _pickle_stream(file, verdict.container)
        unpickler = _restricted_joblib_unpickler_class()(label, stream, policy)
    try:
        model = unpickler.load()
    except Exception as error:
        if unpickler.refused:
            raise UnsafeModel(_refusal_message(label, sorted(set(unpickler.refused)), None), _TRUST_HINT,
                              refused=sorted(set(unpickler.refused))) from error
        raise
    if unpickler.refused:
        raise UnsafeModel(_refusal_message(label, sorted(set(unpickler.refused)), None), _TRUST_HINT,
                          refused=sorted(set(unpickler.refused)))
    return model


def _load_trusted(file: BinaryIO, label: str) -> object:
    if file.peek(4).startswith(_ZIP_MAGICS):
        import skops.io

        return skops.io.load(label, trusted=skops.io.get_untrusted_types(file=label))
    import joblib

    return joblib.load(label)  # also reads plain pickles and joblib's pre-0.10 format


@contextmanager
def _load_failures_as_bad_input(label: str) -> Iterator[None]:
    """Turn the model's own failure while loading into a one-line BadInput (exit 2)."""
    try:
        yield
    except (BadInput, UnsafeModel):
        raise
    except Exception as error:  # whatever the file makes the libraries raise
        raise BadInput(f"could not load {label}: {_first_line(error)}",
                       "the file may be damaged, or need other library versions") from error


def load_model_file(path: str | os.PathLike, *, allow: Sequence[str] = (), trust: bool = False) -> object:
    """Scan (unless ``trust``), refuse with UnsafeModel when the scan refuses, then load.

    Loading enforces the allowlist again in the unpickler's find_class: joblib's NumpyUnpickler for
    joblib files, pickle.Unpickler for plain pickles; ``.skops`` files load through skops, trusting
    exactly the types the scan judged. ``trust=True`` loads with joblib.load (or skops trusting every
    type) without a scan. A file that fails while loading is BadInput with a one-line message.
    """
    policy = _policy(allow)
    label = os.fspath(path)
    with _open_model_file(path) as file, _load_failures_as_bad_input(label):
        if trust:
            return _load_trusted(file, label)
        verdict = _scan_opened_file(file, label, policy)
        if not verdict.safe:
            raise UnsafeModel(_refusal_message(label, verdict.refused, verdict.problem), verdict.hint,
                              refused=verdict.refused)
        file.seek(0)
        return _load_checked(file, label, verdict, policy)
