"""The safety scan: hostile model files are refused twice (by the scan and by the loader's own
find_class) and never run; benign scikit-learn, xgboost and lightgbm models all load.

Every hostile payload, if it ran, would create a marker file in the test's tmp_path; each test checks
that the marker never appears.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import gzip
import importlib
import io
import lzma
import os
import pickle
import shlex
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import hostile_gadgets as gadgets
import joblib
import numpy as np
import pandas as pd
import pytest

from xai_cli import safety
from xai_cli.errors import BadInput, UnsafeModel

# --------------------------------------------------------------------------------------------------
# Writing files the way users (and attackers) do


def _joblib_bytes(obj: object, compress: object = 0, protocol: int | None = None) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress, protocol=protocol)
    return buffer.getvalue()


# name -> (writer, loader container the file gets when the scan is bypassed)
CONTAINERS: dict[str, tuple[Callable[[object], bytes], str]] = {
    **{f"pickle-p{protocol}": (lambda obj, p=protocol: pickle.dumps(obj, protocol=p), "pickle")
       for protocol in range(6)},
    "joblib": (_joblib_bytes, "joblib"),
    "joblib-p0": (lambda obj: _joblib_bytes(obj, protocol=0), "joblib"),
    "joblib-p2": (lambda obj: _joblib_bytes(obj, protocol=2), "joblib"),
    **{f"joblib+{method}": (lambda obj, m=method: _joblib_bytes(obj, compress=(m, 3)), f"joblib+{method}")
       for method in ("zlib", "gzip", "lzma", "xz", "bz2")},
}

# Hand-made pickle bytes are wrapped the way joblib compresses a stream.
COMPRESSIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "raw": (lambda data: data, "joblib"),
    "zlib": (zlib.compress, "joblib+zlib"),
    "gzip": (gzip.compress, "joblib+gzip"),
    "bz2": (bz2.compress, "joblib+bz2"),
    "lzma": (lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE), "joblib+lzma"),
    "xz": (lambda data: lzma.compress(data, format=lzma.FORMAT_XZ), "joblib+xz"),
}

# --------------------------------------------------------------------------------------------------
# Hostile corpus


def _touch_command(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _create_file_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _write_inner_pickle(marker: Path) -> Path:
    inner = marker.parent / "inner.pkl"
    inner.write_bytes(pickle.dumps(gadgets.Call(os.system, _touch_command(marker))))
    return inner


def _hostile_inner_npy(marker: Path) -> Path:
    inner = marker.parent / "inner.npy"
    np.save(inner, np.array([gadgets.Call(os.system, _touch_command(marker))], dtype=object), allow_pickle=True)
    return inner


def _hostile_inner_joblib(marker: Path) -> Path:
    inner = marker.parent / "inner.joblib"
    joblib.dump(gadgets.Call(os.system, _touch_command(marker)), inner)
    return inner


# kind -> (payload built from the marker path, refused names of which one must be reported)
HOSTILE_OBJECTS: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "os-system": (lambda marker: gadgets.Call(os.system, _touch_command(marker)), ("posix.system", "nt.system")),
    "subprocess-popen": (lambda marker: gadgets.Call(subprocess.Popen, ["touch", str(marker)]),
                         ("subprocess.Popen", "commands.Popen")),  # protocols 0-2 spell it commands
    "builtins-exec": (lambda marker: gadgets.Call(exec, _create_file_code(marker)),
                      ("builtins.exec", "__builtin__.exec")),
    "builtins-eval": (lambda marker: gadgets.Call(eval, _create_file_code(marker)),
                      ("builtins.eval", "__builtin__.eval")),
    # getattr(numpy.ndarray, "tofile")(array, marker): only numpy, plus getattr, writes a file.
    "getattr-on-allowed-class": (
        lambda marker: gadgets.Call(gadgets.Call(getattr, np.ndarray, "tofile"), np.arange(3.0), str(marker)),
        ("builtins.getattr", "__builtin__.getattr")),
    "nested-pickle-loads": (lambda marker: gadgets.Call(pickle.loads, pickle.dumps(
        gadgets.Call(os.system, _touch_command(marker)))), ("_pickle.loads", "pickle.loads")),
    "nested-pandas-read-pickle": (lambda marker: gadgets.Call(pd.read_pickle, str(_write_inner_pickle(marker))),
                                  ("pandas.read_pickle",)),
    "nested-numpy-load": (lambda marker: gadgets.Call(np.load, str(_hostile_inner_npy(marker)), None, True),
                          ("numpy.load",)),
    "nested-joblib-load": (lambda marker: gadgets.Call(joblib.load, str(_hostile_inner_joblib(marker))),
                           ("joblib.numpy_pickle.load",)),
    # A scanner that stops at the first numpy array of a joblib file never sees this one.
    "after-a-numpy-array": (lambda marker: {"coef": np.arange(5000.0), "evil": gadgets.Call(
        os.system, _touch_command(marker))}, ("posix.system", "nt.system")),
    # joblib writes an object array as a nested pickle after the wrapper.
    "inside-an-object-array": (lambda marker: {"coef": np.arange(10.0), "names": np.array(
        ["a", gadgets.Call(os.system, _touch_command(marker))], dtype=object)}, ("posix.system", "nt.system")),
}


def _short_unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call_with_command(marker: Path) -> bytes:
    """Opcodes that call the callable on top of the stack with the touch command: (cmd,) REDUCE."""
    return _short_unicode(_touch_command(marker)) + b"\x85R"


def _dotted_stack_global(marker: Path) -> bytes:
    # Protocol 4 resolves dotted names: "sklearn" + "os.system" is os.system.
    return b"\x80\x04" + _short_unicode("sklearn") + _short_unicode("os.system") + b"\x93" \
        + _call_with_command(marker) + b"."


def _dotted_global(marker: Path) -> bytes:
    return b"\x80\x04" + _global("numpy", "lib._npyio_impl.os.system") + _call_with_command(marker) + b"."


def _stack_global_from_memo(marker: Path) -> bytes:
    # Module and name pushed, memoized, dropped, then fetched back with BINGET.
    return (b"\x80\x04" + _short_unicode(os.system.__module__) + b"\x94" + _short_unicode("system") + b"\x94"
            + b"00" + b"h\x00h\x01\x93" + _call_with_command(marker) + b".")


def _stack_global_from_binput(marker: Path) -> bytes:
    return (b"\x80\x02" + _short_unicode(os.system.__module__) + b"q\x07" + _short_unicode("system")
            + b"r\x00\x01\x00\x00" + b"00" + b"h\x07j\x00\x01\x00\x00\x93"
            + _call_with_command(marker) + b".")


def _stack_global_from_a_call(marker: Path) -> bytes:
    # The module name is the result of builtins.str("posix"): unknowable without running the file.
    return (b"\x80\x04" + _global("builtins", "str") + _short_unicode(os.system.__module__) + b"\x85R"
            + _short_unicode("system") + b"\x93" + _call_with_command(marker) + b".")


def _inst_opcode(marker: Path) -> bytes:
    return b"(V" + _touch_command(marker).encode() + b"\nios\nsystem\n."


def _obj_opcode(marker: Path) -> bytes:
    return b"(" + _global("os", "system") + b"V" + _touch_command(marker).encode() + b"\no."


def _python2_builtin_eval(marker: Path) -> bytes:
    return _global("__builtin__", "eval") + b"(V" + _create_file_code(marker).encode() + b"\ntR."


def _array_wrapper_state(length: int) -> bytes:
    """Opcodes that push a NumpyArrayWrapper state for ``length`` uint8 values (explicit memo slots)."""
    state = {"subclass": np.ndarray, "shape": (length,), "order": "C", "dtype": np.dtype("u1"),
             "allow_mmap": False, "numpy_array_alignment_bytes": 16}
    opcodes = pickle.dumps(state, protocol=2)
    return opcodes[2:-1]  # without PROTO and STOP


def _build_inside_a_frame(marker: Path) -> bytes:
    """A wrapper BUILT in the middle of a frame, with a payload after it in the same frame.

    joblib reads the array bytes from the file, after the frame, and then runs the rest of the frame;
    a scanner that skips the array bytes right after BUILD skips the payload instead.
    """
    frame = (_global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + _array_wrapper_state(8)
             + b"b0" + _global(os.system.__module__, "system") + _call_with_command(marker) + b".")
    return b"\x80\x04\x95" + struct.pack("<Q", len(frame)) + frame + b"\x00" + bytes(8)


def _wrapper_through_a_call(marker: Path) -> bytes:
    """numpy.take([NumpyArrayWrapper], 0) hands joblib a wrapper the scan could not recognise."""
    wrapper_class = _global("joblib.numpy_pickle", "NumpyArrayWrapper")
    return (b"\x80\x02" + _global("numpy", "take") + b"]" + wrapper_class + b"aK\x00\x86R" + b")\x81"
            + _array_wrapper_state(8) + b"b" + b"\x00" + bytes(8) + b"0"
            + _global(os.system.__module__, "system") + _call_with_command(marker) + b".")


# kind -> (bytes built from the marker path, names of which one must be reported, or () when the scan
# can only say it cannot follow the file)
HANDMADE: dict[str, tuple[Callable[[Path], bytes], tuple[str, ...]]] = {
    "dotted-stack-global": (_dotted_stack_global, ("sklearn.os.system",)),
    "dotted-global": (_dotted_global, ("numpy.lib._npyio_impl.os.system",)),
    "stack-global-from-memo": (_stack_global_from_memo, ("posix.system", "nt.system")),
    "stack-global-from-binput": (_stack_global_from_binput, ("posix.system", "nt.system")),
    "stack-global-from-a-call": (_stack_global_from_a_call, ()),
    "inst-opcode": (_inst_opcode, ("os.system",)),
    "obj-opcode": (_obj_opcode, ("os.system",)),
    "python2-builtin-eval": (_python2_builtin_eval, ("__builtin__.eval",)),
    "build-inside-a-frame": (_build_inside_a_frame, ("posix.system", "nt.system")),
    "wrapper-through-a-call": (_wrapper_through_a_call, ()),
}


def _assert_refused_twice(path: Path, expected: tuple[str, ...], loader_container: str, marker: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = safety.scan_model_file(path)
    assert not verdict.safe
    if expected:
        assert set(expected) & set(verdict.refused), verdict
    else:
        assert verdict.problem, verdict

    with pytest.raises(UnsafeModel) as refusal:
        safety.load_model_file(path)
    assert refusal.value.exit_code == 3
    assert refusal.value.refused == verdict.refused
    assert refusal.value.message.startswith(f"refused to load {path}: ")
    assert all(name in refusal.value.message for name in verdict.refused)
    assert "--trust" in refusal.value.hint and "--allow MODULE" in refusal.value.hint

    # The second line of defence on its own: a scan that (wrongly) says safe.
    scan = safety._scan_opened_file

    def scan_that_says_safe(*args: object) -> safety.ScanVerdict:
        verdict = scan(*args)
        return dataclasses.replace(verdict, safe=True, refused=[], problem=None, container=loader_container)

    monkeypatch.setattr(safety, "_scan_opened_file", scan_that_says_safe)
    with pytest.raises(UnsafeModel) as late_refusal:
        safety.load_model_file(path)
    assert late_refusal.value.refused
    assert not marker.exists()


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("kind", HOSTILE_OBJECTS)
def test_hostile_object_is_refused_by_scan_and_loader(kind: str, container: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    make_payload, expected = HOSTILE_OBJECTS[kind]
    write, loader_container = CONTAINERS[container]
    path = tmp_path / "model.pkl"
    path.write_bytes(write(make_payload(marker)))
    _assert_refused_twice(path, expected, loader_container, marker, monkeypatch)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("kind", HANDMADE)
def test_handmade_hostile_pickle_is_refused_by_scan_and_loader(kind: str, compression: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    make_bytes, expected = HANDMADE[kind]
    compress, loader_container = COMPRESSIONS[compression]
    path = tmp_path / "model.pkl"
    path.write_bytes(compress(make_bytes(marker)))
    _assert_refused_twice(path, expected, loader_container, marker, monkeypatch)


def _load_trusted_and_wait(path: Path) -> None:
    with contextlib.suppress(BadInput):
        loaded = safety.load_model_file(path, trust=True)
        if isinstance(loaded, subprocess.Popen):
            loaded.wait()


@pytest.mark.parametrize("kind", HOSTILE_OBJECTS)
def test_control_hostile_object_runs_when_loaded_without_the_scan(kind: str, tmp_path: Path) -> None:
    """Control for the tests above: each payload is real, and creates its marker once trusted."""
    marker = tmp_path / "marker"
    path = tmp_path / "model.joblib"
    path.write_bytes(_joblib_bytes(HOSTILE_OBJECTS[kind][0](marker)))
    _load_trusted_and_wait(path)
    assert marker.exists()


@pytest.mark.parametrize("kind", HANDMADE)
def test_control_handmade_pickle_runs_when_loaded_without_the_scan(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(HANDMADE[kind][0](marker))
    _load_trusted_and_wait(path)
    assert marker.exists()


def test_payload_in_the_frame_after_a_wrapper_is_named_not_skipped(tmp_path: Path) -> None:
    """Framing is followed like pickle's unframer: the payload is read as opcodes and named."""
    path = tmp_path / "model.joblib"
    path.write_bytes(_build_inside_a_frame(tmp_path / "marker"))
    verdict = safety.scan_model_file(path)
    assert verdict.refused == [f"{os.system.__module__}.system"]
    assert verdict.problem is None and verdict.container == "joblib"


def test_allow_does_not_reallow_denied_names(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for payload in (gadgets.Call(os.system, _touch_command(marker)), gadgets.Call(exec, _create_file_code(marker)),
                    gadgets.Call(subprocess.Popen, ["touch", str(marker)])):
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(payload))
        allow = ("posix", "nt", "builtins", "subprocess")
        assert not safety.scan_model_file(path, allow=allow).safe
        with pytest.raises(UnsafeModel):
            safety.load_model_file(path, allow=allow)
    assert not marker.exists()


REFUSED_GLOBALS = [
    ("posix", "system"), ("os", "system"), ("subprocess", "Popen"), ("pickle", "loads"),
    ("functools", "reduce"), ("zoneinfo", "ZoneInfo"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "compile"), ("builtins", "getattr"),
    ("builtins", "setattr"), ("builtins", "delattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("builtins", "input"), ("builtins", "breakpoint"), ("builtins", "globals"), ("builtins", "locals"),
    ("builtins", "vars"), ("builtins", "dir"), ("builtins", "type"), ("__builtin__", "eval"),
    ("pandas", "read_pickle"), ("pandas", "read_csv"), ("pandas.io.pickle", "read_pickle"),
    ("pandas", "eval"), ("pandas.core.computation.eval", "evaluate"), ("pandas", "HDFStore"),
    ("numpy", "load"), ("numpy", "loadtxt"), ("numpy", "fromfile"), ("numpy", "memmap"),
    ("numpy", "DataSource"), ("numpy.lib.npyio", "NpzFile"), ("numpy.lib._npyio_impl", "BagObj"),
    ("numpy.ctypeslib", "as_array"), ("numpy.testing", "assert_equal"), ("numpy.f2py", "run_main"),
    ("joblib", "load"), ("joblib.numpy_pickle", "load"), ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("joblib", "Parallel"), ("scipy.io", "loadmat"), ("scipy.io.matlab", "savemat"),
    ("sklearn.utils._testing", "TempMemmap"), ("sklearn.datasets", "fetch_openml"),
    ("xgboost.core", "_LIB"), ("lightgbm.basic", "_LIB"),
    ("sklearn", "os.system"), ("numpy", "testing.os"), ("sklearn", "__builtins__"), ("numpy", "__getattr__"),
    ("sklearn.base", "os"), ("sklearn.utils", "sys"),
    # Functions inside the allowed packages are refused unless listed by exact name: each of these
    # calls getattr or import_module with the file's arguments, or reaches files or raw memory.
    ("sklearn.utils.validation", "_check_response_method"), ("numpy.core", "_ufunc_reconstruct"),
    ("scipy._lib._uarray._backend", "unpickle_function"),
    ("numpy.lib.stride_tricks", "as_strided"), ("numpy._core.fromnumeric", "_wrapfunc"),
    ("numpy._core.fromnumeric", "_wrapreduction"), ("sklearn.utils.validation", "check_memory"),
    ("sklearn.utils._set_output", "check_library_installed"), ("pandas.plotting._core", "_get_plot_backend"),
    ("sklearn.utils._array_api", "check_same_namespace"), ("pandas.core.arraylike", "array_ufunc"),
    ("lightgbm.basic", "_has_method"), ("numpy", "sum"), ("numpy", "take"), ("numpy", "frompyfunc"),
    ("numpy", "vectorize"),  # a class that calls whatever function it holds
    ("sklearn.utils.validation", "reduce"),  # functools.reduce re-exported: judged where it is defined
    # Classes with side effects, metaclasses, and classes built on denied ones.
    ("numpy.lib._stride_tricks_impl", "DummyArray"),
    ("numpy._core._internal", "_ctypes"), ("lightgbm.engine", "CVBooster"), ("scipy.odr", "ODR"),
    ("pandas.tseries.holiday", "HolidayCalendarMetaClass"), ("sklearn.utils.parallel", "Parallel"),
    ("sklearn._build_utils.version", "version"),  # prints to stdout when imported: never imported
]
ALLOWED_GLOBALS = [
    ("sklearn.pipeline", "Pipeline"), ("sklearn.tree._tree", "Tree"), ("numpy", "dtype"), ("numpy", "log1p"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("pandas._libs.internals", "_unpickle_block"), ("pandas", "DataFrame"), ("scipy.sparse", "csr_matrix"),
    ("xgboost.core", "Booster"), ("xgboost.callback", "EvaluationMonitor"), ("lightgbm.basic", "Booster"),
    ("catboost.core", "CatBoostClassifier"), ("__builtin__", "set"), ("builtins", "slice"),
    ("copy_reg", "_reconstructor"), ("_codecs", "encode"), ("collections", "OrderedDict"),
    ("datetime", "datetime"),
    # HistGradientBoosting with native categoricals keeps functools.partial(check_array, ...)
    ("functools", "partial"), ("sklearn.utils.validation", "check_array"),
    ("scipy.special._special_ufuncs", "expit"), ("pandas", "NA"), ("sklearn.metrics._ranking", "roc_auc_score"),
    ("pandas.core.indexes.base", "_new_Index"), ("sklearn.neighbors._kd_tree", "newObj"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"), ("numpy.ma.core", "_mareconstruct"),
]


def _global_ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{module}.{name}" for module, name in pairs]


def _pickle_of_global(module: str, name: str) -> bytes:
    return _global(module, name) + b"."


@pytest.mark.parametrize(("module", "name"), REFUSED_GLOBALS, ids=_global_ids(REFUSED_GLOBALS))
def test_global_outside_the_allowlist_or_on_the_deny_list_is_refused(module: str, name: str,
                                                                      tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_pickle_of_global(module, name))
    assert safety.scan_model_file(path).refused == [f"{module}.{name}"]


@pytest.mark.parametrize(("module", "name"), ALLOWED_GLOBALS, ids=_global_ids(ALLOWED_GLOBALS))
def test_global_that_models_need_is_allowed(module: str, name: str, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_pickle_of_global(module, name))
    verdict = safety.scan_model_file(path)
    assert verdict.safe and verdict.imports == [f"{module}.{name}"]


@pytest.mark.parametrize("name", ["reduce", "signature"])
def test_a_stdlib_function_reexported_by_an_allowed_module_is_refused(name: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """sklearn.utils.validation.reduce is functools.reduce: judged by what the name is bound to."""
    path = tmp_path / "model.pkl"
    path.write_bytes(_pickle_of_global("sklearn.utils.validation", name))
    assert safety.scan_model_file(path).refused == [f"sklearn.utils.validation.{name}"]
    _assert_refused_twice(path, (f"sklearn.utils.validation.{name}",), "pickle", tmp_path / "marker", monkeypatch)


def test_loader_refuses_a_module_object(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_pickle_of_global("sklearn.base", "copy"))  # the copy module, imported by sklearn.base
    with pytest.raises(UnsafeModel, match="sklearn.base.copy"):
        safety.load_model_file(path)


# --------------------------------------------------------------------------------------------------
# Benign corpus


@pytest.fixture(scope="module")
def training_data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 60
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, rows),
        "income": rng.normal(50, 5, rows),
        "color": rng.choice(["red", "green", "blue"], rows).astype(object),
    })
    frame.loc[[3, 17], "age"] = np.nan
    frame.loc[[5, 40], "color"] = None
    frame["label"] = (frame["income"] > 50).astype(int)
    return frame


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["age", "income"]].fillna(0.0)


@pytest.fixture(scope="module")
def benign_models(training_data: pd.DataFrame) -> dict[str, tuple[object, pd.DataFrame]]:
    """Small trained models, each with the frame it predicts on."""
    import lightgbm
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    frame = training_data
    label, income, numeric = frame["label"], frame["income"], _numeric(frame)
    preprocess = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore")), ["color"]),
    ])
    features = frame[["age", "income", "color"]]
    positive = numeric.abs()
    return {
        "pipeline-logistic": (Pipeline([("preprocess", preprocess), ("model", LogisticRegression())])
                              .fit(features, label), features),
        "random-forest": (RandomForestClassifier(n_estimators=5, random_state=0).fit(numeric, label),
                          numeric),
        "gradient-boosting": (GradientBoostingRegressor(n_estimators=5, random_state=0).fit(numeric, income),
                              numeric),
        "hist-gradient-boosting": (HistGradientBoostingClassifier(max_iter=5, random_state=0)
                                   .fit(frame[["age", "income"]], label), frame[["age", "income"]]),
        "linear-regression": (LinearRegression().fit(numeric, income), numeric),
        "decision-tree": (DecisionTreeClassifier(random_state=0).fit(numeric, label), numeric),
        "function-transformer": (make_pipeline(FunctionTransformer(np.log1p), LinearRegression())
                                 .fit(positive, income), positive),
        "xgboost": (xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(frame[["age", "income"]], label),
                    frame[["age", "income"]]),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1)
                     .fit(frame[["age", "income"]], label), frame[["age", "income"]]),
    }


def _skops_bytes(model: object) -> bytes:
    import skops.io

    return skops.io.dumps(model)


BENIGN_WRITERS: dict[str, Callable[[object], bytes]] = {
    **{name: write for name, (write, _) in CONTAINERS.items()},
    "skops": _skops_bytes,
}
BENIGN_MODEL_NAMES = ("pipeline-logistic", "random-forest", "gradient-boosting", "hist-gradient-boosting",
                      "linear-regression", "decision-tree", "function-transformer", "xgboost", "lightgbm")


@pytest.mark.parametrize("writer", BENIGN_WRITERS)
@pytest.mark.parametrize("model_name", BENIGN_MODEL_NAMES)
def test_benign_model_loads_and_predicts_the_same(model_name: str, writer: str, tmp_path: Path,
                                                  benign_models: dict) -> None:
    model, rows = benign_models[model_name]
    path = tmp_path / "model.bin"
    path.write_bytes(BENIGN_WRITERS[writer](model))

    verdict = safety.scan_model_file(path)
    assert verdict.safe, verdict
    assert verdict.refused == [] and verdict.problem is None
    expected_containers = {"skops"} if writer == "skops" else {CONTAINERS[writer][1]}
    if expected_containers == {"joblib"}:
        expected_containers.add("pickle")  # a joblib file without numpy arrays is a plain pickle
    assert verdict.container in expected_containers

    loaded = safety.load_model_file(path)
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows))


def test_joblib_object_array_imports_are_listed(tmp_path: Path) -> None:
    """The nested pickle of an object array (feature names) is scanned, not skipped."""
    path = tmp_path / "model.joblib"
    joblib.dump({"names": np.array(["age", None], dtype=object)}, path)
    verdict = safety.scan_model_file(path)
    assert verdict.safe and verdict.container == "joblib"
    assert "numpy._core.multiarray._reconstruct" in verdict.imports


# --------------------------------------------------------------------------------------------------
# --allow for a user's own module

USER_MODULE = '''
from sklearn.base import BaseEstimator, TransformerMixin


class AddOne(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X + 1
'''


@pytest.mark.parametrize("writer", ["pickle-p4", "joblib", "joblib+gzip"])
def test_allow_lets_a_users_own_class_load(writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           training_data: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    (tmp_path / "xai_test_user_steps.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "xai_test_user_steps", raising=False)
    user_steps = importlib.import_module("xai_test_user_steps")
    rows = _numeric(training_data)
    model = make_pipeline(user_steps.AddOne(), LinearRegression()).fit(rows, training_data["income"])
    path = tmp_path / "model.bin"
    path.write_bytes(CONTAINERS[writer][0](model))

    verdict = safety.scan_model_file(path)
    assert verdict.refused == ["xai_test_user_steps.AddOne"]
    with pytest.raises(UnsafeModel, match="xai_test_user_steps.AddOne"):
        safety.load_model_file(path)

    assert safety.scan_model_file(path, allow=("xai_test_user_steps",)).safe
    loaded = safety.load_model_file(path, allow=("xai_test_user_steps",))
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


def test_allow_rejects_something_that_is_not_a_module_name(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(BadInput, match="--allow"):
        safety.scan_model_file(path, allow=("not a module",))


def test_trust_skips_the_scan(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(gadgets.Call(dict, {"trusted": True})))
    assert safety.load_model_file(path, trust=True) == {"trusted": True}


# --------------------------------------------------------------------------------------------------
# Files that are not models, or not whole


def _zip_without_schema() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    return buffer.getvalue()


NOT_A_MODEL: dict[str, bytes] = {
    "empty": b"",
    "text": b"this is not a model\n" * 50,
    "csv": b"age,income,color\n42,50.5,red\n",
    "random-bytes": np.random.default_rng(0).bytes(4096),
    "png-header": b"\x89PNG\r\n\x1a\n" + bytes(64),
    "zip-without-skops-schema": _zip_without_schema(),
    "gzip-of-text": gzip.compress(b"hello, world\n" * 20),
    "zlib-magic-then-garbage": b"x" + b"not zlib data" * 10,
    "bz2-magic-then-garbage": b"BZh9" + b"nonsense" * 10,
}


@pytest.mark.parametrize("content", NOT_A_MODEL)
def test_not_a_model_file_is_bad_input(content: str, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(NOT_A_MODEL[content])
    with pytest.raises(BadInput, match="not a model file|is empty"):
        safety.scan_model_file(path)
    with pytest.raises(BadInput) as error:
        safety.load_model_file(path)
    assert error.value.exit_code == 2


def test_directory_and_missing_file_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="directory"):
        safety.scan_model_file(tmp_path)
    with pytest.raises(BadInput, match="not found"):
        safety.load_model_file(tmp_path / "missing.pkl")
    with pytest.raises(BadInput, match="not found"):
        safety.load_model_file(tmp_path / "missing.pkl", trust=True)


@pytest.mark.parametrize("writer", ["pickle-p2", "pickle-p5", "joblib", "joblib+gzip", "joblib+xz"])
def test_truncated_file_is_refused_with_a_problem(writer: str, tmp_path: Path, benign_models: dict) -> None:
    model, _ = benign_models["random-forest"]
    data = CONTAINERS[writer][0](model)
    path = tmp_path / "model.pkl"
    path.write_bytes(data[: len(data) // 2])
    verdict = safety.scan_model_file(path)
    assert not verdict.safe and verdict.refused == []
    assert "truncated" in verdict.problem or "ends early" in verdict.problem
    assert verdict.damaged
    with pytest.raises(UnsafeModel, match="could not read it to the end") as refusal:
        safety.load_model_file(path)
    assert refusal.value.exit_code == 3
    # A damaged file is not one to trust: the hint says to get a whole copy, not to pass --trust.
    assert "--trust" not in refusal.value.hint and "damaged" in refusal.value.hint
    assert safety.refusal_hint(verdict) == refusal.value.hint


def test_joblib_before_0_10_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"ZF0x12            " + zlib.compress(pickle.dumps([1])))
    verdict = safety.scan_model_file(path)
    assert not verdict.safe and "joblib older than 0.10" in verdict.problem


@pytest.mark.parametrize("writer", ["pickle-p0", "pickle-p4", "joblib", "joblib-p0", "joblib+zlib"])
def test_damaged_files_raise_only_bad_input_or_unsafe_model(writer: str, tmp_path: Path,
                                                           benign_models: dict) -> None:
    """Flip bytes and cut files at random places: never a traceback, never another exception type."""
    model, _ = benign_models["decision-tree"]
    data = CONTAINERS[writer][0](model)
    rng = np.random.default_rng(1)
    path = tmp_path / "model.pkl"
    for _ in range(40):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), size=3):
            damaged[position] = rng.integers(0, 256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.integers(1, len(damaged))]
        path.write_bytes(bytes(damaged))
        try:
            safety.scan_model_file(path)
            safety.load_model_file(path)
        except (BadInput, UnsafeModel):
            pass


# --------------------------------------------------------------------------------------------------
# Gadgets inside the allowed packages (tests/hostile_gadgets.py): refused by name, and by structure


@pytest.fixture(scope="module")
def small_forest() -> object:
    from sklearn.ensemble import RandomForestClassifier

    rows = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    return RandomForestClassifier(n_estimators=2, random_state=0).fit(rows, np.arange(20) % 2)


def _hidden_in(model: object, payload: object) -> object:
    """A real, working fitted model that carries the payload in an attribute."""
    import copy

    carrier = copy.copy(model)
    carrier._note = payload
    return carrier


GADGET_WRITERS = ("pickle-p2", "pickle-p5", "joblib+zlib")


@pytest.mark.parametrize("hidden", [False, True], ids=["alone", "hidden-in-a-forest"])
@pytest.mark.parametrize("writer", GADGET_WRITERS)
@pytest.mark.parametrize("kind", gadgets.GADGETS)
def test_gadget_of_an_allowed_package_is_refused_by_scan_and_loader(
        kind: str, writer: str, hidden: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        small_forest: object) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # where the import gadgets' marker modules are
    marker = tmp_path / "marker"
    make_payload, refused_name = gadgets.GADGETS[kind]
    payload = make_payload(marker)
    write, loader_container = CONTAINERS[writer]
    path = tmp_path / "model.pkl"
    path.write_bytes(write(_hidden_in(small_forest, payload) if hidden else payload))
    _assert_refused_twice(path, (refused_name,), loader_container, marker, monkeypatch)


@pytest.mark.parametrize("kind", gadgets.LIVE_GADGETS)
def test_control_gadget_runs_when_loaded_without_the_scan(kind: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Control for the test above: each gadget is real, and creates its marker once trusted."""
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "marker"
    path = tmp_path / "model.joblib"
    path.write_bytes(_joblib_bytes(gadgets.GADGETS[kind][0](marker)))
    _load_trusted_and_wait(path)
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle-p4", "joblib+gzip"])
@pytest.mark.parametrize("kind", gadgets.STRUCTURAL)
def test_call_the_file_may_not_make_is_refused(kind: str, writer: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every global is allowed; what the file does with them is not. The scan names what it can see
    (a value-only function called, the result of a call called, a partial around a made callable);
    the loader refuses all of them on the real objects, the rest included."""
    make_payload, scan_refuses = gadgets.STRUCTURAL[kind]
    write, loader_container = CONTAINERS[writer]
    path = tmp_path / "model.pkl"
    path.write_bytes(write(make_payload()))
    with _time_limit(20):  # lightgbm's network join would block, were its constructor ever reached
        verdict = safety.scan_model_file(path)
        if scan_refuses:
            assert verdict.refused and all(name.endswith(")") for name in verdict.refused), verdict
            _assert_refused_twice(path, tuple(verdict.refused), loader_container, tmp_path / "marker",
                                  monkeypatch)
        else:
            assert verdict.safe, verdict
            with pytest.raises(UnsafeModel) as refusal:
                safety.load_model_file(path)
            assert refusal.value.exit_code == 3 and refusal.value.refused


@contextlib.contextmanager
def _time_limit(seconds: int):
    import signal

    def expired(*_args: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("hidden", [False, True], ids=["alone", "hidden-in-a-forest"])
@pytest.mark.parametrize("writer", ["pickle-p2", "pickle-p4", "joblib", "joblib+gzip"])
@pytest.mark.parametrize("kind", gadgets.DTYPE_TRICKS)
def test_dtype_numpy_would_not_build_is_refused(kind: str, writer: str, hidden: bool, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, small_forest: object) -> None:
    """A BUILD that clears an object dtype's flags (numpy then reads file bytes as pointers) or puts a
    field outside the item (reads and writes off the buffer): the scan and the loader each rebuild the
    dtype from its description and refuse it, before any array is made with it."""
    payload = gadgets.DTYPE_TRICKS[kind]()
    write, loader_container = CONTAINERS[writer]
    path = tmp_path / "model.pkl"
    path.write_bytes(write(_hidden_in(small_forest, payload) if hidden else payload))
    verdict = safety.scan_model_file(path)
    assert "numpy would not build" in (verdict.problem or ""), verdict
    _assert_refused_twice(path, (), loader_container, tmp_path / "marker", monkeypatch)


def _dtype_built_twice() -> bytes:
    """numpy.dtype('V8', False, True), BUILD with a sound state, then a second BUILD on the same dtype."""
    dtype = (_global("numpy", "dtype") + _short_unicode("V8") + b"\x89\x88\x87R")
    state = b"(K\x03" + _short_unicode("|") + b"NNNK\x08K\x01K\x00t"
    return b"\x80\x04" + dtype + state + b"b" + state + b"b."


def _dtype_changed_after_use() -> bytes:
    """A dtype given to numpy.core scalar() first, then changed by a BUILD."""
    dtype = (_global("numpy", "dtype") + _short_unicode("V8") + b"\x89\x88\x87R\x94")
    scalar = _global("numpy._core.multiarray", "scalar") + b"h\x00" + b"C\x08" + bytes(8) + b"\x86R0"
    state = b"(K\x03" + _short_unicode("|") + b"NNNK\x08K\x01K\x00t"
    return b"\x80\x04" + dtype + scalar + b"h\x00" + state + b"b."


@pytest.mark.parametrize("make", [_dtype_built_twice, _dtype_changed_after_use], ids=["twice", "after-use"])
def test_a_dtype_is_built_once_before_it_is_used(make: Callable[[], bytes], tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(make())
    with pytest.raises(UnsafeModel) as refusal:
        safety.load_model_file(path, trust=False)
    assert refusal.value.exit_code == 3


@pytest.mark.parametrize("target", ["ndarray", "tuple-in-list"])
def test_setitem_only_fills_a_dict(target: str, tmp_path: Path) -> None:
    """pickle's SETITEM is obj[key] = value: on an array, a write into memory the file chose."""
    if target == "ndarray":
        made = (_global("numpy._core.numeric", "_frombuffer") + b"(C\x08" + bytes(8) + _global("numpy", "dtype")
                + _short_unicode("u8") + b"\x89\x88\x87R" + b"K\x01\x85" + _short_unicode("C") + b"tR")
        path_bytes = b"\x80\x04" + made + b"K\x00K\x07s."
    else:
        path_bytes = b"\x80\x04]" + _short_unicode("a") + b"K\x01s."
    path = tmp_path / "model.pkl"
    path.write_bytes(path_bytes)
    with pytest.raises(UnsafeModel, match="SETITEM on a"):
        safety.load_model_file(path)


def _build_on_a_global() -> bytes:
    """BUILD on an allowed class: would set BaseEstimator.__repr__ for the whole program."""
    return (b"\x80\x02" + _global("sklearn.base", "BaseEstimator") + b"}" + _short_unicode("__repr__")
            + _global("builtins", "str") + b"sb.")


def _setitem_on_a_global() -> bytes:
    return b"\x80\x02" + _global("collections", "OrderedDict") + _short_unicode("a") + b"Ns."


@pytest.mark.parametrize("make", [_build_on_a_global, _setitem_on_a_global], ids=["build", "setitem"])
def test_changing_an_allowed_global_is_refused(make: Callable[[], bytes], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(make())
    verdict = safety.scan_model_file(path)
    assert not verdict.safe and "for the whole program" in verdict.problem
    _assert_refused_twice(path, (), "pickle", tmp_path / "marker", monkeypatch)


def _with_state(model: object, **attributes: object) -> object:
    import copy

    changed = copy.copy(model)
    changed.__dict__.update(attributes)
    return changed


@pytest.mark.parametrize("kind", ["array-interface", "stack-method"])
def test_state_that_steers_numpy_or_a_meta_estimator_is_refused(kind: str, tmp_path: Path, small_forest: object,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy reads __array_interface__ from the instance (an array over any address); stacking calls
    getattr(estimator, stack_method_[i])(X). Set by BUILD: both scan and loader refuse."""
    from sklearn.ensemble import StackingClassifier

    if kind == "array-interface":
        interface = {"data": (4096, False), "shape": (1,), "typestr": "<f8", "version": 3}
        model = _with_state(small_forest, __array_interface__=interface)
    else:
        model = _with_state(StackingClassifier([("a", small_forest)]), stack_method_=["to_csv"])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=4))
    verdict = safety.scan_model_file(path)
    assert not verdict.safe and verdict.problem, verdict
    _assert_refused_twice(path, (), "pickle", tmp_path / "marker", monkeypatch)


def test_a_dict_that_serves_keys_as_attributes_cannot_carry_numpy_hooks(tmp_path: Path) -> None:
    """sklearn's Bunch answers bunch.__array_interface__ from its keys: only the loader sees it."""
    from sklearn.utils import Bunch

    bunch = Bunch()
    bunch["__array_interface__"] = {"data": (4096, False), "shape": (1,), "typestr": "<f8", "version": 3}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(bunch, protocol=4))
    with pytest.raises(UnsafeModel, match="__array_interface__"):
        safety.load_model_file(path)


def test_pickle_calls_only_an_objects_own_methods(tmp_path: Path) -> None:
    """APPENDS calls target.extend: a Bunch answers it from its keys, here numpy.log1p (every global is
    allowed, and the scan cannot know). The loader checks that the method is the object's own."""
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04" + _global("sklearn.utils._bunch", "Bunch") + b")\x81" + b"("
                     + _short_unicode("extend") + _global("numpy", "log1p") + b"u" + b"(K\x01e.")
    assert safety.scan_model_file(path).safe
    with pytest.raises(UnsafeModel, match="APPENDS on a Bunch"):
        safety.load_model_file(path)


def test_gadget_hidden_in_a_model_is_refused_by_inspect_and_explain(tmp_path: Path, small_forest: object) -> None:
    """From the outside: a working forest carrying the getattr -> eval chain; nothing runs, exit 3."""
    from conftest import run_cli

    marker = tmp_path / "marker"
    model = tmp_path / "forest.joblib"
    joblib.dump(_hidden_in(small_forest, gadgets.GADGETS["getattr-chain-to-eval"][0](marker)), model,
                compress="zlib")
    data = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]}).to_csv(data, index=False)
    inspected = run_cli(["inspect", model, "--json"])
    assert inspected.code == 3, inspected
    assert inspected.json()["safety"]["refused"] == ["sklearn.utils.validation._check_response_method"]
    explained = run_cli(["explain", model, data, "--out", tmp_path / "out", "--quiet"])
    assert explained.code == 3, explained
    assert "sklearn.utils.validation._check_response_method" in explained.stderr
    assert "Traceback" not in explained.stderr
    assert not marker.exists() and not (tmp_path / "out" / "attributions.json").exists()


# --------------------------------------------------------------------------------------------------
# --allow: the user's own module is judged by the user, the system stays closed

USER_PACKAGE = {
    "__init__.py": '''
from sklearn.base import BaseEstimator, TransformerMixin


class FeatureStoreReader(TransformerMixin, BaseEstimator):  # "store", "reader": denied words
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X * 2
''',
    "io.py": '''
from xai_test_userpkg import FeatureStoreReader


class LoadColumns(FeatureStoreReader):  # in a module named io, with "load" in its name
    pass
''',
}


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "xai_test_userpkg"
    package.mkdir()
    for name, text in USER_PACKAGE.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("xai_test_userpkg", "xai_test_userpkg.io"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return importlib.import_module("xai_test_userpkg.io")


@pytest.mark.parametrize("writer", ["pickle-p2", "joblib+zlib"])
def test_allow_judges_a_users_module_by_the_users_allow(writer: str, tmp_path: Path, user_package,
                                                        training_data: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    rows = _numeric(training_data)
    model = make_pipeline(user_package.FeatureStoreReader(), user_package.LoadColumns(),
                          LinearRegression()).fit(rows, training_data["income"])
    path = tmp_path / "model.bin"
    path.write_bytes(CONTAINERS[writer][0](model))
    assert safety.scan_model_file(path).refused == ["xai_test_userpkg.FeatureStoreReader",
                                                    "xai_test_userpkg.io.LoadColumns"]
    assert safety.scan_model_file(path, allow=["xai_test_userpkg"]).safe
    loaded = safety.load_model_file(path, allow=["xai_test_userpkg"])
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


@pytest.mark.parametrize("allow", ["os", "posix", "builtins", "io", "tempfile", "subprocess", "numpy", "sklearn"])
def test_allow_does_not_open_the_system_or_the_packages_gadgets(allow: str, tmp_path: Path) -> None:
    import tempfile

    marker = tmp_path / "marker"
    payloads = [gadgets.Call(os.remove, str(marker)), gadgets.Call(tempfile.TemporaryDirectory),
                gadgets.Call(getattr, np.ndarray, "tofile"), gadgets.GADGETS["ufunc-reconstruct"][0](marker),
                gadgets.GADGETS["getattr-chain-to-eval"][0](marker)]
    for payload in payloads:
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=4))
        assert not safety.scan_model_file(path, allow=[allow]).safe
        with pytest.raises(UnsafeModel):
            safety.load_model_file(path, allow=[allow])
    assert not marker.exists()


def test_allow_names_one_exact_function_of_an_allowed_package(tmp_path: Path,
                                                              training_data: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rows = _numeric(training_data)
    model = make_pipeline(FunctionTransformer(np.clip, kw_args={"a_min": 0, "a_max": 60}),
                          LinearRegression()).fit(rows, training_data["income"])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    refused = safety.scan_model_file(path).refused
    assert refused == ["numpy.clip"]
    loaded = safety.load_model_file(path, allow=refused)
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


# --------------------------------------------------------------------------------------------------
# The benign corpus: every kind of global real models pickle, in every container; zero refusals


@pytest.fixture(scope="module")
def benign_corpus(training_data: pd.DataFrame) -> dict[str, tuple[object, object]]:
    """Small fitted models that between them pickle every rebuild and value function the allowlist
    names (numpy random states, Cython trees, masked arrays, pandas values, scorers, ufuncs...)."""
    import warnings

    import lightgbm
    import scipy.special
    import xgboost
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        StackingClassifier,
        VotingClassifier,
    )
    from sklearn.feature_selection import SelectKBest, f_classif, mutual_info_classif
    from sklearn.impute import KNNImputer, SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV, TunedThresholdClassifierCV
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        PolynomialFeatures,
        SplineTransformer,
        StandardScaler,
        TargetEncoder,
    )
    from sklearn.svm import SVC

    warnings.filterwarnings("ignore")
    frame = training_data
    label, income, numeric = frame["label"], frame["income"], _numeric(frame)
    three = pd.Series(np.arange(len(frame)) % 3).map({0: "a", 1: "b", 2: "c"})
    categorical = frame[["age", "income", "color"]].astype({"color": "category"})
    mixed = frame[["age", "income", "color"]]
    holder = LogisticRegression().fit(numeric, label)
    holder.values_ = {
        "frame": categorical.head(5), "na": pd.NA, "nat": pd.NaT, "timestamp": pd.Timestamp("2021-01-01", tz="UTC"),
        "timedelta": pd.Timedelta("1D"), "period": pd.period_range("2020-01", periods=2, freq="M"),
        "interval": pd.interval_range(0, 2), "multi": pd.MultiIndex.from_tuples([("a", 1)]),
        "range": pd.RangeIndex(3), "dates": pd.date_range("2020", periods=2), "masked": np.ma.masked_array([1, 2], [0, 1]),
        "nullable": pd.array([1, None], dtype="Int64"), "generator": np.random.default_rng(0),
        "random_state": np.random.RandomState(0), "scalars": [np.float64(1.5), np.int32(2), np.datetime64("2020-01-01")],
        "object_array": np.array(["a", None, 1.5], dtype=object), "structured": np.zeros(2, [("a", "f8"), ("b", "i4")]),
        "ufuncs": [np.log1p, np.exp, scipy.special.expit], "stdlib": [{1}, frozenset({2}), complex(1, 2), b"x",
                                                                       bytearray(b"y"), slice(1, 2), range(3)],
    }
    ordinal_knn = ColumnTransformer([("n", make_pipeline(KNNImputer(), StandardScaler(), FunctionTransformer(np.abs),
                                                         FunctionTransformer(np.log1p)), ["age", "income"]),
                                     ("c", OrdinalEncoder(), ["color"])])
    target_encoded = ColumnTransformer([("n", make_pipeline(SimpleImputer(), PolynomialFeatures(2)), ["age", "income"]),
                                        ("c", TargetEncoder(), ["color"])])
    models = {
        "pipeline-knn-imputer-ordinal-tree": Pipeline([("pre", ordinal_knn), ("m", ExtraTreesClassifier(3))]).fit(mixed, label),
        "pipeline-target-encoder-kbest": Pipeline([("pre", target_encoded), ("k", SelectKBest(f_classif, k=3)),
                                                   ("m", LogisticRegression())]).fit(mixed, label),
        "hist-gradient-boosting-native-categorical": HistGradientBoostingClassifier(
            max_iter=3, categorical_features="from_dtype").fit(categorical, label),
        "hist-gradient-boosting-multiclass": HistGradientBoostingClassifier(max_iter=3).fit(numeric, three),
        "gradient-boosting-multiclass": GradientBoostingClassifier(n_estimators=2).fit(numeric, three),
        "knn-kd-tree": KNeighborsClassifier(3, algorithm="kd_tree").fit(numeric, label),
        "knn-ball-tree": KNeighborsRegressor(3, algorithm="ball_tree").fit(numeric, income),
        "svc": SVC(probability=True, random_state=0).fit(numeric, label),
        "mlp": MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(numeric, label),
        "calibrated": CalibratedClassifierCV(LogisticRegression(), cv=2).fit(numeric, label),
        "voting": VotingClassifier([("l", LogisticRegression()), ("k", KNeighborsClassifier())],
                                   voting="soft").fit(numeric, label),
        "stacking": StackingClassifier([("l", LogisticRegression()), ("e", ExtraTreesClassifier(2))],
                                       cv=2).fit(numeric, label),
        "grid-search-multimetric": GridSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2, refit="f1",
                                                scoring={"f1": "f1", "auc": "roc_auc"}).fit(numeric, label),
        "tuned-threshold": TunedThresholdClassifierCV(LogisticRegression(), cv=2, thresholds=5).fit(numeric, label),
        "mutual-info-spline-ridge": make_pipeline(SelectKBest(mutual_info_classif, k=1), SplineTransformer(n_knots=3),
                                                  Ridge()).fit(numeric, label),
        "transformed-target": TransformedTargetRegressor(Ridge(), func=np.log1p, inverse_func=np.expm1)
        .fit(numeric, income),
        "xgboost-categorical": xgboost.XGBClassifier(n_estimators=2, enable_categorical=True, tree_method="hist")
        .fit(categorical, label),
        "lightgbm-categorical": lightgbm.LGBMClassifier(n_estimators=2, verbose=-1).fit(categorical, label),
        "pandas-and-numpy-values": holder,
    }
    models["one-hot-pipeline"] = Pipeline([("pre", ColumnTransformer([
        ("c", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder=SimpleImputer())),
        ("m", LogisticRegression())]).fit(mixed, label)
    rows = {name: categorical if "categorical" in name else mixed if "pipeline" in name else numeric
            for name in models}
    return {name: (model, rows[name].head(8)) for name, model in models.items()}


BENIGN_CORPUS_NAMES = (
    "pipeline-knn-imputer-ordinal-tree", "pipeline-target-encoder-kbest", "hist-gradient-boosting-native-categorical",
    "hist-gradient-boosting-multiclass", "gradient-boosting-multiclass", "knn-kd-tree", "knn-ball-tree", "svc", "mlp",
    "calibrated", "voting", "stacking", "grid-search-multimetric", "tuned-threshold", "mutual-info-spline-ridge",
    "transformed-target", "xgboost-categorical", "lightgbm-categorical", "pandas-and-numpy-values", "one-hot-pipeline",
)


@pytest.mark.parametrize("model_name", BENIGN_CORPUS_NAMES)
def test_benign_corpus_loads_in_every_container(model_name: str, tmp_path: Path, benign_corpus: dict) -> None:
    """Zero false refusals: each model, pickled with protocols 0-5 and joblib plain or compressed."""
    from threadpoolctl import threadpool_limits

    model, rows = benign_corpus[model_name]
    path = tmp_path / "model.bin"
    with threadpool_limits(1):  # two test workers on two cores: no OpenMP thread oversubscription
        expected = model.predict(rows) if hasattr(model, "predict") else None
        for writer, (write, _) in CONTAINERS.items():
            path.write_bytes(write(model))
            verdict = safety.scan_model_file(path)
            assert verdict.safe, (writer, verdict)
            loaded = safety.load_model_file(path)
            assert type(loaded) is type(model), writer
            if expected is not None and writer in ("pickle-p5", "joblib+xz"):
                np.testing.assert_array_equal(loaded.predict(rows), expected, err_msg=writer)
