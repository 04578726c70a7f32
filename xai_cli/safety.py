"""Refuse a model file that would import anything outside an allowlist, before it is loaded.

A pickle is a small program: loading it imports the globals it names and calls them. So before xai
loads a model it reads the file's opcodes with :func:`pickletools.genops`, *without executing them*,
lists every global the file imports (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) and refuses the file
(exit 3) when one of them is outside the allowlist: scikit-learn, numpy, scipy, pandas, xgboost,
lightgbm, catboost, joblib's array wrapper, and a short explicit list of harmless standard-library
globals that pickles of those packages really contain. Loading then applies the same rule a second
time, in the unpickler's ``find_class``, so a difference between how the scan reads the file and how
Python reads it cannot be turned into a bypass.

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

The rule
--------
* A global ``module.name`` is allowed when ``module`` is an allowed package or one of its submodules
  (``--allow MODULE`` adds packages), or when the pair is on the explicit standard-library list.
* Inside allowed packages, names that load a second, unscanned file or run code are denied anyway, by
  module (``pandas.io``, ``numpy.lib.npyio``, ``numpy.testing``, ``scipy.io``, ``sklearn.datasets``,
  all of ``joblib`` but the array wrapper...) and by the words in the name (``load``, ``read``,
  ``eval``, ``exec``, ``system``, ``pickle``, ``open``, ``import``, ``_LIB``...). ``--allow`` cannot
  re-allow them. Dotted names (``sklearn`` + ``os.system``) and dunder names are refused, but for the
  few helpers numpy and Cython write themselves.
* When loading, the object ``find_class`` resolves must not be a module or a ctypes object, and must
  be defined inside an allowed package (or be the allowed standard-library object itself): a stdlib
  function re-exported by an allowed module (``sklearn.datasets._base.urlretrieve``) is refused.
* A joblib array wrapper may only appear the way joblib writes it; any other use of it (passed to a
  call, stored in a container, fetched twice from the memo) is refused, because that is how a file
  could make the scan and the loader disagree about where the raw array bytes are.

Containers: plain pickles (protocols 0-5), joblib files (plain, or compressed with zlib, gzip, bz2,
lzma or xz, told apart by their first bytes exactly as joblib does, decompressed as a stream) and
``.skops`` archives (through :func:`skops.io.get_untrusted_types`, judged by the same rule).

Outcomes
--------
* Missing file, directory, empty file, or bytes that are no pickle, joblib or skops file at all:
  :class:`~xai_cli.errors.BadInput` (exit 2), "not a model file".
* A file that starts like a pickle but cannot be read to the end (truncated, corrupt compressed data,
  malformed opcodes, joblib files older than 0.10, lz4 compression): the verdict carries a
  ``problem`` and the file is refused like an unsafe one (exit 3): the scan cannot vouch for it.
  A truncated file is therefore exit 3, with a message that says the data ends early.
* A file that passes the scan but fails while loading: ``BadInput`` with a one-line message.

What this does NOT do
---------------------
A scan is not a sandbox. It decides *which* code a file may reach, not what that code does with the
arguments the file supplies: an allowed constructor or ``__setstate__`` still runs on hostile input,
and a bug in a native parser (xgboost, lightgbm) stays reachable. It does not verify where a file
comes from or whether it is the model you expect. Files you did not make yourself are best loaded
from a source you trust; ``--trust`` skips the scan entirely.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from xai_cli.errors import BadInput, UnsafeModel

__all__ = ["ALLOWED_ROOT_PACKAGES", "ScanVerdict", "load_model_file", "scan_model_file"]

# --------------------------------------------------------------------------------------------------
# The allowlist

ALLOWED_ROOT_PACKAGES: tuple[str, ...] = (
    "sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost", "joblib",
)

# Standard-library globals that pickles of the allowed packages really contain, as Python 3 names them
# (pickle maps the Python 2 spellings ``__builtin__`` and ``copy_reg`` before importing). Found by
# pickling the models of tests/test_safety.py with protocols 0-5 and joblib; plus a few plain value
# types that cannot do anything but hold values. functools.partial is not needed and not allowed.
ALLOWED_STDLIB_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "bool"), ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "complex"),
    ("builtins", "dict"), ("builtins", "float"), ("builtins", "frozenset"), ("builtins", "int"),
    ("builtins", "list"), ("builtins", "object"), ("builtins", "range"), ("builtins", "set"),
    ("builtins", "slice"), ("builtins", "str"), ("builtins", "tuple"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),  # how protocols 0-1 make an object without calling __init__
    ("_codecs", "encode"),  # how protocol 2 spells bytes: encode(latin-1 text, "latin1")
    ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"),
})

# The one joblib global a joblib file needs: the placeholder that announces raw array bytes.
_JOBLIB_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")

# Dunder names are refused (``__import__``, ``__builtins__``, a module's ``__getattr__``...) except
# the pickling helpers numpy and Cython write themselves; those only build their own types.
_ALLOWED_DUNDER_GLOBALS = frozenset({
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
})
_CYTHON_UNPICKLE_HELPER = re.compile(r"__pyx_unpickle_[A-Za-z0-9_]+")

# Modules inside allowed packages that read other files (often with an unchecked pickle), run code,
# or exist only for tests. A module is denied when it is one of these or below one.
_DENIED_MODULES: tuple[str, ...] = (
    "joblib",  # joblib.load, Memory, Parallel...; only the array wrapper above is needed
    "numpy.testing", "numpy.distutils", "numpy.f2py", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._format_impl", "numpy.lib._datasource",
    "numpy.lib.utils", "numpy.lib._utils_impl", "numpy._pytesttester", "numpy.compat",
    "pandas.io", "pandas.core.computation", "pandas.compat.pickle_compat", "pandas.util",
    "pandas.testing", "pandas._testing",
    "scipy.io", "scipy._lib._testutils", "scipy.misc",
    "sklearn.datasets", "sklearn.utils._testing", "sklearn.utils.estimator_checks",
    "sklearn.utils._show_versions",
    "xgboost.testing", "xgboost.dask", "xgboost.spark", "xgboost.tracker", "xgboost.collective",
    "lightgbm.dask",
)
# Module path parts that mean test helpers or file I/O wherever they appear.
_DENIED_MODULE_PARTS = frozenset({"io", "testing", "_testing", "tests", "conftest"})

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
_NOT_A_MODEL_HINT = "xai reads files written by pickle.dump, joblib.dump or skops.io.dump"


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


def _is_refused_global(module: str, name: str, roots: Sequence[str]) -> bool:
    """Whether importing ``name`` from ``module`` is refused; the one rule the scan and loader share."""
    module, name = _python3_global(module, name)
    if (module, name) == _JOBLIB_ARRAY_WRAPPER or (module, name) in ALLOWED_STDLIB_GLOBALS:
        return False
    if not _DOTTED_MODULE.fullmatch(module) or not name.isidentifier() or not name.isascii():
        return True  # includes every dotted name: "os.system" inside "sklearn" walks out of sklearn
    if not _within(module, roots) or _within(module, _DENIED_MODULES):
        return True
    if _DENIED_MODULE_PARTS.intersection(module.split(".")):
        return True
    if name.startswith("__"):
        return (module, name) not in _ALLOWED_DUNDER_GLOBALS and not _CYTHON_UNPICKLE_HELPER.fullmatch(name)
    return _name_is_denied(name)


def _resolved_object_is_allowed(resolved: object, roots: Sequence[str]) -> bool:
    """Whether an object find_class resolved may be handed to the unpickler.

    The name check cannot see what a name is bound to: a module, a ctypes library handle, or a
    standard-library function re-exported by an allowed module. Only the loader can look.
    """
    if isinstance(resolved, types.ModuleType):
        return False
    try:
        if type(resolved).__module__.split(".")[0] in ("ctypes", "_ctypes"):
            return False
        origin = getattr(resolved, "__module__", None)
        qualname = getattr(resolved, "__qualname__", None)
    except Exception:  # an object that fails to describe itself is not one we know
        return False
    if not isinstance(origin, str):
        return True  # some C functions carry no module; their name was checked already
    return _within(origin, roots) or (origin, qualname) in ALLOWED_STDLIB_GLOBALS


def _allowed_roots(allow: Sequence[str]) -> tuple[str, ...]:
    if isinstance(allow, str):
        allow = (allow,)
    for module in allow:
        if not isinstance(module, str) or not _DOTTED_MODULE.fullmatch(module):
            raise BadInput(f"--allow expects a module name, got {module!r}",
                           "pass the top-level package of your own classes, e.g. --allow mypkg")
    return ALLOWED_ROOT_PACKAGES + tuple(allow)


# --------------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class ScanVerdict:
    """What the scan found in a model file.

    ``refused`` and ``imports`` spell globals as the file does ("posix.system", "__builtin__.set").
    For a skops file, ``imports`` lists the types skops does not trust by itself. An uncompressed
    joblib file holding no numpy array is a plain pickle, and its container is "pickle".
    """

    safe: bool
    refused: list[str]  # every refused import, sorted unique
    imports: list[str]  # every global the file imports, "module.name", sorted unique
    container: str  # "pickle", "joblib", "joblib+zlib", "joblib+gzip", "joblib+lzma", "joblib+xz",
    #                 "joblib+bz2" or "skops"
    problem: str | None  # why the scan could not read the whole file, None when it did


class _ScanProblem(Exception):
    """The scan cannot follow the file from here on, so it cannot vouch for it."""


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
            raise _ScanProblem(f"the data ends inside {what}: the file looks truncated")
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
                raise _ScanProblem(_FRAME_CUT_SHORT)
            return data
        return _read_up_to(self.raw, size)

    def readline(self) -> bytes:
        if self.frame is not None:
            line = self.frame.readline()
            if not line:
                self.frame = None
                return self._raw_line()
            if not line.endswith(b"\n"):
                raise _ScanProblem(_FRAME_CUT_SHORT)
            return line
        return self._raw_line()

    def _raw_line(self) -> bytes:
        line = self.raw.readline(_MAX_LINE_BYTES)
        if len(line) == _MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise _ScanProblem("a protocol-0 line longer than 1 GiB")
        return line

    def start_frame(self, size: int) -> None:
        if self.frame is not None and self.frame.read() != b"":
            raise _ScanProblem("a frame starts before the previous one ends")
        if size > _MAX_FRAME_BYTES:
            raise _ScanProblem(f"a pickle frame of {size} bytes (pickle writes about 64 KiB)")
        self.frame = io.BytesIO(_read_up_to(self.raw, size))


# --------------------------------------------------------------------------------------------------
# The opcode walk: a symbolic unpickler that imports and calls nothing

@dataclass(eq=False)
class _Global:
    """A class or function the pickle imports: as spelled in the file, and as Python 3 resolves it."""

    spelled: str
    module: str
    name: str

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

    def __init__(self, raw: BinaryIO, findings: _Findings, roots: Sequence[str], *,
                 reads_joblib_arrays: bool):
        self.raw = raw
        self.reader = _FramedReader(raw)
        self.findings = findings
        self.roots = roots
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
        raise _ScanProblem("the pickle data ends before its STOP opcode")  # genops raises first

    # -- stack helpers --------------------------------------------------------------------------

    def _push(self, value: object) -> None:
        self.stack.append(value)

    def _pop(self) -> object:
        if not self.stack:
            raise _ScanProblem("an opcode takes a value from an empty stack")
        return self.stack.pop()

    def _top(self) -> object:
        if not self.stack:
            raise _ScanProblem("an opcode needs a value on an empty stack")
        return self.stack[-1]

    def _pop_mark(self) -> list:
        if not self.metastack:
            raise _ScanProblem("an opcode needs a MARK that is not there")
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
        if _is_refused_global(module, name, self.roots):
            self.findings.refused.add(spelled)
        return _Global(spelled, *_python3_global(module, name))

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
        self._push(_Call(self._consumed(self._import(module, name)), tuple(args)))

    # -- calls and BUILD ------------------------------------------------------------------------

    def _op_REDUCE(self, _arg: None) -> None:
        args = self._pop()
        func = self._pop()
        if isinstance(args, _WrapperReconstructArgs) and isinstance(func, _Global) \
                and func.is_("copyreg", "_reconstructor"):
            self._push(_ArrayWrapper({}))  # object.__new__(NumpyArrayWrapper): no attributes yet
            return
        self._push(_Call(self._consumed(func), self._consumed(args)))

    def _op_NEWOBJ(self, _arg: None) -> None:
        args = self._pop()
        cls = self._pop()
        if self._is_wrapper_class(cls) and args == ():
            self._push(_ArrayWrapper({}))
            return
        self._push(_Call(self._consumed(cls), self._consumed(args)))

    def _op_NEWOBJ_EX(self, _arg: None) -> None:
        kwargs = self._consumed(self._pop())
        args = self._consumed(self._pop())
        self._push(_Call(self._consumed(self._pop()), (args, kwargs)))

    def _op_OBJ(self, _arg: None) -> None:
        items = [self._consumed(item) for item in self._pop_mark()]
        if not items:
            raise _ScanProblem("an OBJ opcode without a class")
        self._push(_Call(items[0], tuple(items[1:])))

    def _op_BUILD(self, _arg: None) -> None:
        state = self._consumed(self._pop())
        instance = self._top()
        if isinstance(instance, _ArrayWrapper):
            self._build_array_wrapper(instance, state)
        elif isinstance(instance, _Global):
            raise _ScanProblem(f"a BUILD that would change {instance.spelled} for the whole program")
        elif isinstance(instance, _Call):
            instance.states.append(state)

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
            nested = _OpcodeWalk(self.raw, self.findings, self.roots, reads_joblib_arrays=False)
            nested.run()
            return
        # Files from joblib <= 1.1 have no alignment attribute and no padding.
        if attributes.get("numpy_array_alignment_bytes") is not None:
            padding = self.raw.read(1)
            if not padding:
                raise _ScanProblem("the data ends before a joblib array: the file looks truncated")
            _skip_exactly(self.raw, padding[0], "a joblib array's padding")
        if dtype.itemsize == 0:
            raise _ScanProblem("a joblib array with a zero-size dtype, which joblib cannot read")
        _skip_exactly(self.raw, count * dtype.itemsize, "a joblib array")

    # -- literals -------------------------------------------------------------------------------

    def _op_PROTO(self, protocol: int) -> None:
        if not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise _ScanProblem(f"unsupported pickle protocol {protocol}")
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
        if isinstance(target, list):
            target.append(value)

    def _op_APPENDS(self, _arg: None) -> None:
        items = [self._consumed(item) for item in self._pop_mark()]
        target = self._top()
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
            raise _ScanProblem("a dictionary with a key but no value")
        items = [self._consumed(item) for item in items]
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
            raise _ScanProblem("a negative memo index")
        self.memo[index] = self._top()

    _op_PUT = _op_BINPUT = _op_LONG_BINPUT = _memo_put

    def _op_MEMOIZE(self, _arg: None) -> None:
        self.memo[len(self.memo)] = self._top()

    def _memo_get(self, index: int) -> None:
        if index not in self.memo:
            raise _ScanProblem(f"a memo lookup of index {index}, which was never stored")
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


def _resolve_dtype(value: object, depth: int):
    """Rebuild the numpy dtype a pickle describes, from literals only, as numpy's unpickling would.

    ``numpy.dtype(spec, align, copy)`` then ``__setstate__(state)``; nested dtypes (structured arrays)
    are rebuilt the same way. ``copy`` is forced to True so that no shared builtin dtype is changed.
    """
    import numpy

    if depth > _MAX_DTYPE_NESTING:
        raise _ScanProblem("a joblib array dtype nested too deeply")
    if not (isinstance(value, _Call) and isinstance(value.func, _Global)
            and (value.func.module, value.func.name) in _NUMPY_DTYPE_GLOBALS):
        raise _ScanProblem("a joblib array whose dtype is not a plain numpy dtype")
    args = value.args
    if not (isinstance(args, tuple) and 1 <= len(args) <= 3 and isinstance(args[0], str)
            and all(isinstance(arg, (bool, int)) for arg in args[1:])):
        raise _ScanProblem("a joblib array whose dtype is not a plain numpy dtype")
    try:
        dtype = numpy.dtype(args[0], bool(args[1]) if len(args) > 1 else False, True)
        for state in value.states:
            dtype.__setstate__(_dtype_state(state, depth + 1))
    except _ScanProblem:
        raise
    except Exception as error:  # numpy rejects the description: so would the loader
        raise _ScanProblem(f"a joblib array with an invalid dtype: {error}") from error
    return dtype


def _dtype_state(value: object, depth: int) -> object:
    """A dtype's pickled state with nested dtype descriptions rebuilt; only literals are accepted."""
    if depth > _MAX_DTYPE_NESTING:
        raise _ScanProblem("a joblib array dtype nested too deeply")
    if value is None or isinstance(value, (str, bytes, int, float)):
        return value
    if isinstance(value, tuple):
        return tuple(_dtype_state(item, depth + 1) for item in value)
    if isinstance(value, list):
        return [_dtype_state(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _dtype_state(item, depth + 1) for key, item in value.items()}
    if isinstance(value, _Call):
        return _resolve_dtype(value, depth + 1)
    raise _ScanProblem("a joblib array whose dtype is not a plain numpy dtype")


# --------------------------------------------------------------------------------------------------
# Scanning files


def _describe_parse_error(error: Exception, stream: BinaryIO) -> str:
    if isinstance(error, _ScanProblem):
        return str(error)
    if isinstance(error, EOFError):
        return "the compressed data ends early: the file looks truncated"
    if isinstance(error, (zlib.error, lzma.LZMAError, OSError)):
        return f"the compressed data is corrupt ({error})"
    if _exhausted(stream):
        return "the data ends before the pickle's STOP opcode: the file looks truncated"
    return f"the pickle data is malformed ({type(error).__name__}: {error})"


def _exhausted(stream: BinaryIO) -> bool:
    try:
        return stream.read(1) == b""
    except Exception:  # a stream that fails again is not known to be at its end
        return False


def _scan_pickle_stream(stream: BinaryIO, container: str, roots: Sequence[str]) -> ScanVerdict:
    findings = _Findings()
    problem = None
    try:
        _OpcodeWalk(stream, findings, roots, reads_joblib_arrays=True).run()
    except Exception as error:  # whatever stops the walk, the file is not vouched for
        problem = _describe_parse_error(error, stream)
        # Compressed data that is valid but ends early (EOFError) is a truncated file, not garbage.
        if not findings.looks_like_pickle and not isinstance(error, EOFError):
            raise _NotAModel(problem) from error
    if container == "pickle" and findings.read_joblib_array:
        container = "joblib"
    return ScanVerdict(safe=not findings.refused and problem is None, refused=sorted(findings.refused),
                       imports=sorted(findings.imports), container=container, problem=problem)


def _is_refused_type_name(type_name: str, roots: Sequence[str]) -> bool:
    module, _, name = type_name.rpartition(".")
    return not module or _is_refused_global(module, name, roots)


def _scan_skops(path: str, roots: Sequence[str]) -> ScanVerdict:
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
    refused = [type_name for type_name in untrusted if _is_refused_type_name(type_name, roots)]
    return ScanVerdict(safe=not refused, refused=refused, imports=untrusted, container="skops", problem=None)


def _scan_opened_file(file: BinaryIO, label: str, roots: Sequence[str]) -> ScanVerdict:
    """Scan an open model file from its start; the loader reuses the same open file afterwards."""
    head = file.read(8)
    file.seek(0)
    try:
        if head.startswith(_ZIP_MAGICS):
            return _scan_skops(label, roots)
        if head.startswith(_JOBLIB_BEFORE_0_10_MAGIC):
            return ScanVerdict(False, [], [], "joblib", _JOBLIB_BEFORE_0_10_PROBLEM)
        if head.startswith(_LZ4_MAGIC):
            return ScanVerdict(False, [], [], "joblib", "lz4-compressed joblib files are not supported")
        container = _container_of(head)
        return _scan_pickle_stream(_pickle_stream(file, container), container, roots)
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
    roots = _allowed_roots(allow)
    with _open_model_file(path) as file:
        return _scan_opened_file(file, os.fspath(path), roots)


# --------------------------------------------------------------------------------------------------
# Loading with the same rule enforced by the unpickler


class _RefusedImport(pickle.UnpicklingError):
    """find_class refused a global while loading."""


class _AllowlistFindClass:
    """A find_class that refuses what the scan refuses: the loader's own line of defence.

    Mixed into pickle's and joblib's unpicklers. Every refusal is also recorded, so that a refusal
    some library code might catch and swallow during loading still stops the load.
    """

    _roots: Sequence[str]
    refused: list[str]

    def _init_allowlist(self, roots: Sequence[str]) -> None:
        self._roots = roots
        self.refused = []

    def find_class(self, module: str, name: str) -> object:
        spelled = f"{module}.{name}"
        if _is_refused_global(module, name, self._roots):
            self._refuse(spelled)
        resolved = super().find_class(module, name)
        if not _resolved_object_is_allowed(resolved, self._roots):
            self._refuse(spelled)
        return resolved

    def _refuse(self, spelled: str) -> None:
        self.refused.append(spelled)
        raise _RefusedImport(f"refused to import {spelled}")


class _RestrictedPickleUnpickler(_AllowlistFindClass, pickle.Unpickler):
    def __init__(self, file: BinaryIO, roots: Sequence[str]):
        super().__init__(file)
        self._init_allowlist(roots)


@functools.cache
def _restricted_joblib_unpickler_class() -> type:
    """joblib's NumpyUnpickler with the allowlist's find_class (joblib is imported only when needed)."""
    from joblib.numpy_pickle import NumpyUnpickler

    class _RestrictedJoblibUnpickler(_AllowlistFindClass, NumpyUnpickler):
        def __init__(self, filename: str, file_handle: BinaryIO, roots: Sequence[str]):
            super().__init__(filename, file_handle, ensure_native_byte_order=True)
            self._init_allowlist(roots)

        def get_extension(self, code: int) -> None:
            # The extension registry can hand out a cached object without calling find_class.
            self._refuse(f"copyreg extension {code}")

    return _RestrictedJoblibUnpickler


def _refusal_message(label: str, refused: Sequence[str], problem: str | None) -> str:
    reasons = []
    if refused:
        reasons.append(f"it imports {', '.join(refused)} (not on the allowlist)")
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


def _load_checked(file: BinaryIO, label: str, verdict: ScanVerdict, roots: Sequence[str]) -> object:
    """Load a file the scan passed, through an unpickler that enforces the allowlist again."""
    if verdict.container == "skops":
        return _load_skops(label, verdict.imports)
    if verdict.container == "pickle":
        unpickler = _RestrictedPickleUnpickler(file, roots)
    else:
        stream = _pickle_stream(file, verdict.container)
        unpickler = _restricted_joblib_unpickler_class()(label, stream, roots)
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
    roots = _allowed_roots(allow)
    label = os.fspath(path)
    with _open_model_file(path) as file, _load_failures_as_bad_input(label):
        if trust:
            return _load_trusted(file, label)
        verdict = _scan_opened_file(file, label, roots)
        if not verdict.safe:
            raise UnsafeModel(_refusal_message(label, verdict.refused, verdict.problem), _TRUST_HINT,
                              refused=verdict.refused)
        file.seek(0)
        return _load_checked(file, label, verdict, roots)
