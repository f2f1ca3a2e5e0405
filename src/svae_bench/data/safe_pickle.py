"""A pickle reader for untrusted files that is memory-safe by construction.

:func:`load` interprets the pickle opcode stream itself, with a small stack machine; it never
calls :mod:`pickle`, never imports a module named by the stream, and never hands untrusted state
to numpy's or scipy's object reconstruction (``ndarray.__setstate__``, ``dtype.__setstate__``,
``ndarray(buffer=...)``). Arrays are rebuilt from validated parts with
``numpy.frombuffer``-style copies into freshly allocated memory. Anything outside the shapes below
raises :class:`UnsafePickle` (a :class:`ValueError`) with a one-line message naming the offending
opcode, global or value and the byte position of its opcode.

What is accepted
----------------
* Opcodes of protocols 0-5 that build plain data: MARK, STOP, POP, POP_MARK, DUP, the integer,
  float, bool, None, string, bytes and bytearray opcodes, tuple/list/dict construction and
  APPEND(S)/SETITEM(S), the memo (PUT/GET/MEMOIZE in all widths), PROTO and FRAME; REDUCE,
  NEWOBJ, GLOBAL, STACK_GLOBAL and BUILD only as described below.
* Scalars and containers: ``None``, ``bool``, ``int`` (at most 256 bytes / 100 digits), ``float``,
  ``str``, ``bytes``, ``bytearray``, ``tuple``, ``list``, ``dict``. Python 2 strings
  (STRING, BINSTRING, SHORT_BINSTRING) become ``str`` decoded as latin-1, exactly as
  ``pickle.load(f, encoding="latin1")`` gives them. Dict keys must be ``None``, ``bool``, ``int``
  with ``|i| < 2**61 - 1``, ``float``, ``str``, ``bytes`` or small tuples of those (no key
  collision floods). Containers may share items but may not contain themselves, and a list or
  dict may not be changed once it sits inside another container, so the result is a finite tree
  with shared leaves whose depth and node count are bounded (no cycles, no exponential "billion
  laughs" expansion).
* numpy arrays pickled the standard ways: ``numpy[._]core.multiarray._reconstruct(numpy.ndarray,
  (0,), b"b")`` then BUILD with ``(1, shape, dtype, is_fortran, rawdata)``, and (protocol 5)
  ``numpy[._]core.numeric._frombuffer(buffer, dtype, shape, order)``. The dtype must be
  ``numpy.dtype(name, False, True)`` with ``name`` one of b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8
  c16, then BUILD with exactly ``(3, byteorder, None, None, None, -1, -1, 0)`` (byteorder ``"|"``
  for one-byte types, ``"<"`` or ``">"`` otherwise): no object, structured, subarray, void,
  string, datetime or metadata-carrying dtypes. The shape is a tuple of at most 32 non-negative
  ints, and ``len(rawdata)`` must equal ``prod(shape) * itemsize`` exactly; ``rawdata`` is bytes,
  a latin-1 ``str`` (Python 2 pickles) or, for ``_frombuffer``, bytes or a bytearray. Boolean
  arrays must hold only bytes 0 and 1. Python 3 protocols 0-2 spell bytes as
  ``_codecs.encode(text, "latin1")`` and empty bytes as ``bytes()``; both are accepted in exactly
  those forms.
* ``scipy.sparse.csr_matrix`` (``scipy.sparse.csr`` or ``scipy.sparse._csr``) pickled with
  protocol >= 2 (NEWOBJ with no arguments, then BUILD with its ``__dict__``): keys ``data``,
  ``indices``, ``indptr``, ``_shape`` (or ``shape``) required; ``maxprint``, ``_maxprint``,
  ``format`` (must be ``"csr"``) and the sorted/canonical flags optional and otherwise ignored.
  The arrays are checked (1-D; integer ``indices``/``indptr``; ``len(indptr) == rows + 1``;
  ``indptr[0] == 0``, non-decreasing, ``indptr[-1] == len(indices) == len(data)``; every index in
  ``[0, cols)``) before ``scipy.sparse.csr_matrix((data, indices, indptr), shape=shape)``.
* ``collections.defaultdict(list)`` (factory ``__builtin__.list`` / ``builtins.list``), filled by
  SETITEM(S), as in the Planetoid graph files.

Everything else is refused, including every other global (nothing is imported), REDUCE or NEWOBJ
on anything else, BUILD on anything but the three placeholders above (each built once, before it
is used), PERSID/BINPERSID, EXT1/2/4, INST/OBJ, NEWOBJ_EX, sets, out-of-band buffers, negative
or unknown memo indices, stack underflow, a MARK-less POP_MARK, a stream that ends before STOP,
anything but exactly one value on the stack at STOP, and any byte after STOP.

How memory and time are bounded
-------------------------------
Every allocation the reader makes is charged against ``max_bytes`` *before* it is made, at an
over-estimate of its size (payload bytes times their worst-case expansion, plus a fixed allowance
per opcode, container item, memo entry and array), and charges are never credited back. Transient
buffers of a single opcode (a payload's read buffer before its latin-1 decode, chunk copies) must
fit in what is left, too. So the reader's own live memory stays under ``max_bytes`` (plus the
caller's input buffer when ``load`` is given bytes, and the interpreter's usual small constant
overheads) whatever the input. A length field larger than what is left of the budget is refused
before anything is read, and payloads over 1 MiB are read in 1 MiB pieces, so a lying length
costs nothing. Array sizes are checked before allocation: at most 32 dimensions, each and the
product of the non-zero ones at most ``max_bytes`` elements, and ``prod(shape) * itemsize`` equal
to the raw data's length, which is already in memory and charged; rebuilding it is charged again
(the memo can hand one raw string to many arrays). Other bounds: ``max_ops`` opcodes,
``max_depth`` nested MARKs and nesting levels of the result, ``max_memo`` memo entries,
``max_nodes`` nodes in the result's tree expansion (so walking or comparing the result is cheap).
Each opcode does work linear in its own payload or in the items it pops, so time is linear in the
input. The default ``max_bytes`` (512 MiB) fits the classic ``mnist.pkl.gz`` (220 MB of array data
charged twice, latin-1 string and array: 420 MiB in all, 1.6 s) and the Planetoid files (under
1 MB each). Not charged: the interpreter's fixed overheads and, the first time a csr_matrix is
rebuilt, importing :mod:`scipy.sparse`.

Errors from ``fileobj.read``/``readline`` themselves (``OSError``, ``EOFError`` from a truncated
gzip stream, ...) propagate unchanged; everything about the pickle's content raises
:class:`UnsafePickle`.
"""

from __future__ import annotations

import codecs
import collections
import io
import math
import pickletools
import re
import struct
from typing import IO, NoReturn

import numpy as np

__all__ = [
    "UnsafePickle",
    "load",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_OPS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MEMO",
    "DEFAULT_MAX_NODES",
]

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_OPS = 10_000_000
DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_MEMO = 1_000_000
DEFAULT_MAX_NODES = 10_000_000

#: payloads longer than this are read (and latin-1 strings converted) in pieces of this size
CHUNK = 1 << 20
#: over-estimates, in bytes, of what the interpreter allocates (object headers, list/dict slots
#: with their growth slack, the per-container bookkeeping record below)
OP_COST = 64  # per opcode: stack slot, small int/float objects
OBJ_COST = 96  # header of a str/bytes/int object
CONTAINER_COST = 320  # a tuple/list/dict object plus its bookkeeping record
SLOT_COST = 32  # per tuple/list item (pointer, growth slack, the transient item list)
DICT_ITEM_COST = 160  # per dict item (entry, index, resize transient)
MEMO_COST = 160  # per new memo entry
ARRAY_COST = 512  # ndarray/dtype object headers
CSR_COST = 4096  # csr_matrix object and its attribute dict

MAX_INT_BYTES = 256  # LONG1/LONG4 payloads
MAX_INT_DIGITS = 100  # INT/LONG text
MAX_SHORT_LINE = 128  # text lines of INT, LONG, FLOAT, GET, PUT
MAX_NAME_LINE = 256  # GLOBAL module and name lines
MAX_NDIM = 32
MAX_KEY_NODES = 256  # nodes of a tuple used as a dict key
MAX_KEY_INT = 2**61 - 2  # ints beyond this collide in hash with smaller ones
MAX_CSR_DIM = 2**31 - 1


class UnsafePickle(ValueError):
    """The input is not a pickle of the accepted shapes, or exceeds a bound. One line of text."""


# --------------------------------------------------------------------------- whitelist

#: (module, name) -> the role that global may play; nothing is imported for it
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "bytes",
    ("builtins", "bytes"): "bytes",
    ("__builtin__", "list"): "list",
    ("builtins", "list"): "list",
    ("collections", "defaultdict"): "defaultdict",
    ("scipy.sparse.csr", "csr_matrix"): "csr_matrix",
    ("scipy.sparse._csr", "csr_matrix"): "csr_matrix",
}

#: dtype names numpy's dtype.__reduce__ writes for the accepted kinds -> itemsize
_DTYPE_NAMES = {
    "b1": 1,
    "i1": 1,
    "u1": 1,
    "i2": 2,
    "u2": 2,
    "f2": 2,
    "i4": 4,
    "u4": 4,
    "f4": 4,
    "i8": 8,
    "u8": 8,
    "f8": 8,
    "c8": 8,
    "c16": 16,
}
_DTYPES = {
    f"{order}{name}": np.dtype(f"{order}{name}")
    for name, size in _DTYPE_NAMES.items()
    for order in (("|",) if size == 1 else ("<", ">"))
}
_CSR_DATA_KINDS = "biufc"
_CSR_KEYS = {
    "data",
    "indices",
    "indptr",
    "_shape",
    "shape",
    "maxprint",
    "_maxprint",
    "format",
    "_has_sorted_indices",
    "_cs_matrix__has_sorted_indices",
    "_has_canonical_format",
    "_cs_matrix__has_canonical_format",
}

_KEY_LEAVES = (type(None), bool, float, str, bytes)
_NAME_RE = re.compile(r"[A-Za-z0-9_.]{1,100}")
#: a backslash (after removing escaped backslashes) that does not start an escape Python 2's repr
#: could write or that codecs.escape_decode would warn about (octal escapes above 0o377)
_STRING_BAD_ESCAPE = re.compile(rb"\\(?![\\'\"abfnrtv]|x[0-9a-fA-F]{2}|[0-3]|[4-7](?![0-7]{2}))")
_DIGITS_RE = re.compile(rb"[0-9]{1,20}")


class _Global:
    """A whitelisted global, by role; it is never called."""

    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        self.role = role


_MARKERS = {role: _Global(role) for role in set(_GLOBALS.values())}


class _Stub:
    """An object under construction (ndarray, dtype or csr_matrix) awaiting its single BUILD."""

    __slots__ = ("kind", "name", "result")

    def __init__(self, kind: str, name: str = "") -> None:
        self.kind, self.name, self.result = kind, name, None


class _Meta:
    """Bookkeeping for a tuple/list/dict the reader made (it keeps the object alive, so ids are unique)."""

    __slots__ = ("obj", "depth", "nodes", "tainted", "keyable", "parented")

    def __init__(self, obj, depth: int, nodes: int, tainted: bool = False, keyable: bool = False) -> None:
        self.obj, self.depth, self.nodes = obj, depth, nodes
        self.tainted, self.keyable, self.parented = tainted, keyable, False


def _show(name: str) -> str:
    """A module or attribute name as it may appear in a one-line message."""
    return name if _NAME_RE.fullmatch(name) else ascii(name)[:80]


# --------------------------------------------------------------------------- the machine


class _Reader:
    def __init__(
        self, f: IO[bytes], max_bytes: int, max_ops: int, max_depth: int, max_memo: int, max_nodes: int
    ) -> None:
        self.f = f
        self.max_bytes, self.max_ops, self.max_depth = max_bytes, max_ops, max_depth
        self.max_memo, self.max_nodes = max_memo, max_nodes
        self.pos = 0  # bytes consumed
        self.op_pos = 0  # position of the current opcode
        self.op_name = "start"
        self.ops = 0
        self.charged = 0
        self.stack: list = []
        self.metastack: list[list] = []
        self.memo: dict[int, object] = {}
        self.meta: dict[int, _Meta] = {}

    # ----------------------------------------------------------------- helpers

    def fail(self, msg: str) -> NoReturn:
        raise UnsafePickle(f"{msg} (opcode {self.op_name} at byte {self.op_pos})")

    def charge(self, n: int, transient: int = 0) -> None:
        """Account for ``n`` bytes about to be kept and ``transient`` bytes about to be used briefly."""
        if self.charged + n + transient > self.max_bytes:
            self.fail(
                f"memory bound: {n + transient} more bytes would exceed max_bytes={self.max_bytes} "
                f"({self.charged} already used)"
            )
        self.charged += n

    def left(self) -> int:
        return self.max_bytes - self.charged

    def read(self, n: int) -> bytes:
        if n == 0:
            return b""
        if n <= CHUNK:
            data = self.f.read(n)
            if type(data) is not bytes or len(data) > n:
                self.fail("the stream's read() returned something other than the bytes asked for")
            if len(data) == n:
                self.pos += n
                return data
            parts, got = [data], len(data)
        else:
            parts, got = [], 0
        while got < n:
            piece = self.f.read(min(CHUNK, n - got))
            if type(piece) is not bytes or len(piece) > n - got:
                self.fail("the stream's read() returned something other than the bytes asked for")
            if not piece:
                self.pos += got
                self.fail(f"truncated: {n} bytes wanted, {got} left")
            parts.append(piece)
            got += len(piece)
        self.pos += n
        return b"".join(parts)

    def read_payload(self, n: int, keep_factor: int = 1) -> bytes:
        """A length-prefixed payload of ``n`` bytes, charged as ``keep_factor * n`` kept (what it
        becomes: bytes 1, latin-1 str 1, bytearray 1, UTF-8 str at most 4) plus ``n`` transient
        (the read buffer while it is converted, or the pieces while they are joined)."""
        if n < 0:
            self.fail(f"negative length {n}")
        self.charge(OBJ_COST + keep_factor * n, transient=n)
        return self.read(n)

    def readline(self, limit: int) -> bytes:
        """One text line (without its newline) of at most ``limit`` bytes."""
        limit = max(0, min(limit, self.left() // 6))
        line = self.f.readline(limit + 1)
        if type(line) is not bytes or len(line) > limit + 1:
            self.fail("the stream's readline() returned something other than a line")
        self.pos += len(line)
        if not line.endswith(b"\n"):
            if len(line) > limit:
                self.fail(f"text argument longer than {limit} bytes")
            self.fail("truncated text argument")
        return line[:-1]

    def pop(self):
        if not self.stack:
            self.fail("stack underflow")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.metastack:
            self.fail("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def resolve(self, obj):
        """The value of a stack/memo entry: a built placeholder's result; unbuilt ones are refused."""
        if type(obj) is _Stub:
            if obj.result is None:
                self.fail(f"a {obj.kind} used before its BUILD")
            return obj.result
        return obj

    def meta_of(self, obj) -> _Meta | None:
        m = self.meta.get(id(obj))
        return m if m is not None and m.obj is obj else None

    def register(self, obj, depth: int, nodes: int, tainted: bool = False, keyable: bool = False) -> None:
        if depth > self.max_depth:
            self.fail(f"nesting deeper than max_depth={self.max_depth}")
        if nodes > self.max_nodes:
            self.fail(f"more than max_nodes={self.max_nodes} values in one container")
        self.meta[id(obj)] = _Meta(obj, depth, nodes, tainted, keyable)

    def child(self, item, parent: object | None):
        """(resolved item, its depth, nodes) for placing ``item`` in a list or dict ``parent``."""
        item = self.resolve(item)
        if type(item) is _Global:
            self.fail(f"global {item.role} stored as data")
        m = self.meta_of(item)
        if m is None:
            return item, 0, 1
        if m.tainted:
            self.fail("a tuple holding a global stored as data")
        if item is parent:
            self.fail("a container inside itself")
        m.parented = True
        return item, m.depth, m.nodes

    def key(self, key):
        key = self.resolve(key)
        t = type(key)
        if t is int:
            if not -MAX_KEY_INT <= key <= MAX_KEY_INT:
                self.fail("dict key int out of range")
        elif t is tuple:
            m = self.meta_of(key)
            if m is None or not m.keyable:
                self.fail("dict key tuple is not a small tuple of scalars")
        elif t not in _KEY_LEAVES:
            self.fail(f"dict key of type {t.__name__}")
        return key

    def new_tuple(self, items: list) -> tuple:
        self.charge(CONTAINER_COST + SLOT_COST * len(items))
        depth, nodes, tainted, keyable = 0, 1, False, True
        values = []
        for item in items:
            item = self.resolve(item)
            t = type(item)
            m = self.meta_of(item)
            if m is not None:
                m.parented = True
                depth, nodes = max(depth, m.depth), nodes + m.nodes
                tainted |= m.tainted
                keyable &= m.keyable
            else:
                nodes += 1
                if t is _Global:
                    tainted, keyable = True, False
                elif t is int:
                    keyable &= -MAX_KEY_INT <= item <= MAX_KEY_INT
                elif t not in _KEY_LEAVES:
                    keyable = False
            values.append(item)
        result = tuple(values)
        self.register(result, depth + 1, nodes, tainted, keyable and nodes <= MAX_KEY_NODES)
        return result

    def new_list(self, items: list) -> list:
        self.charge(CONTAINER_COST)
        result: list = []
        self.register(result, 1, 1)
        self.extend(result, items)
        return result

    def new_dict(self, factory: bool = False) -> dict:
        self.charge(CONTAINER_COST)
        result = collections.defaultdict(list) if factory else {}
        self.register(result, 1, 1)
        return result

    def target(self, obj, kinds: tuple, what: str) -> _Meta:
        m = self.meta_of(obj)
        if m is None or type(obj) not in kinds:
            self.fail(f"{what} on a {type(obj).__name__}")
        if m.parented:
            self.fail(f"{what} on a container already stored inside another")
        return m

    def extend(self, target, items: list) -> None:
        m = self.target(target, (list,), "APPEND")
        self.charge(SLOT_COST * len(items))
        values = []
        for item in items:
            value, depth, nodes = self.child(item, target)
            m.depth, m.nodes = max(m.depth, depth + 1), m.nodes + nodes
            values.append(value)
        self.check_size(m)
        target.extend(values)

    def set_items(self, target, items: list) -> None:
        if len(items) % 2:
            self.fail("odd number of items for a dict")
        m = self.target(target, (dict, collections.defaultdict), "SETITEM")
        self.charge(DICT_ITEM_COST * (len(items) // 2))
        for i in range(0, len(items), 2):
            key = self.key(items[i])
            value, depth, nodes = self.child(items[i + 1], target)
            m.depth, m.nodes = max(m.depth, depth + 1), m.nodes + 1 + nodes
            self.check_size(m)
            target[key] = value

    def check_size(self, m: _Meta) -> None:
        if m.depth > self.max_depth:
            self.fail(f"nesting deeper than max_depth={self.max_depth}")
        if m.nodes > self.max_nodes:
            self.fail(f"more than max_nodes={self.max_nodes} values in one container")

    def memo_put(self, index: int) -> None:
        if index not in self.memo:
            if len(self.memo) >= self.max_memo:
                self.fail(f"more than max_memo={self.max_memo} memo entries")
            self.charge(MEMO_COST)
        self.memo[index] = self.top()

    def memo_get(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            self.fail(f"memo index {index} was never stored")

    def small_int(self, text: bytes, what: str) -> int:
        if not _DIGITS_RE.fullmatch(text):
            self.fail(f"{what} argument is not a decimal number")
        return int(text)

    def text_int(self, text: bytes) -> int:
        if len(text) > MAX_INT_DIGITS:
            self.fail("integer text too long")
        try:
            return int(text, 0)
        except ValueError:
            self.fail("malformed integer text")

    # ----------------------------------------------------------------- globals, REDUCE, BUILD

    def find_global(self, module: str, name: str) -> None:
        role = _GLOBALS.get((module, name))
        if role is None:
            self.fail(f"refused global {_show(module)}.{_show(name)}")
        self.stack.append(_MARKERS[role])

    def args_tuple(self, args) -> tuple:
        if type(args) is not tuple or self.meta_of(args) is None:
            self.fail(f"arguments are a {type(args).__name__}, not a tuple")
        return args

    def reduce(self) -> None:
        args = self.args_tuple(self.resolve(self.pop()))
        func = self.resolve(self.pop())
        if type(func) is not _Global:
            self.fail(f"REDUCE on a {type(func).__name__}")
        role = func.role
        if role == "reconstruct":
            if not (
                len(args) == 3
                and args[0] is _MARKERS["ndarray"]
                and type(args[1]) is tuple
                and len(args[1]) == 1
                and type(args[1][0]) is int
                and args[1][0] == 0
                and ((type(args[2]) is bytes and args[2] == b"b") or (type(args[2]) is str and args[2] == "b"))
            ):
                self.fail("_reconstruct with arguments other than (ndarray, (0,), b'b')")
            self.charge(ARRAY_COST)
            self.stack.append(_Stub("ndarray"))
        elif role == "dtype":
            if not (
                len(args) == 3
                and type(args[0]) is str
                and type(args[1]) in (bool, int)
                and type(args[2]) in (bool, int)
                and args[1] == 0
                and args[2] == 1
            ):
                self.fail("numpy.dtype with arguments other than (name, False, True)")
            if args[0] not in _DTYPE_NAMES:
                self.fail(f"dtype {ascii(args[0])[:40]} refused (accepted: {' '.join(_DTYPE_NAMES)})")
            self.charge(ARRAY_COST)
            self.stack.append(_Stub("dtype", args[0]))
        elif role == "frombuffer":
            if len(args) != 4 or type(args[0]) not in (bytes, bytearray):
                self.fail("_frombuffer with arguments other than (buffer, dtype, shape, order)")
            order = args[3]
            if type(order) is not str or order not in ("C", "F"):
                self.fail("_frombuffer order is not 'C' or 'F'")
            self.stack.append(self.array(args[0], args[1], args[2], order == "F"))
        elif role == "encode":
            if not (len(args) == 2 and type(args[0]) is str and type(args[1]) is str and args[1] == "latin1"):
                self.fail("_codecs.encode with arguments other than (text, 'latin1')")
            self.charge(OBJ_COST + len(args[0]))
            try:
                self.stack.append(args[0].encode("latin1"))
            except UnicodeEncodeError:
                self.fail("_codecs.encode of text that is not latin-1")
        elif role == "bytes":
            if args:
                self.fail("bytes() with arguments")
            self.stack.append(b"")
        elif role == "defaultdict":
            if not (len(args) == 1 and args[0] is _MARKERS["list"]):
                self.fail("defaultdict with a default factory other than list")
            self.stack.append(self.new_dict(factory=True))
        else:
            self.fail(f"REDUCE on global {role}")

    def newobj(self) -> None:
        args = self.args_tuple(self.resolve(self.pop()))
        cls = self.resolve(self.pop())
        if type(cls) is not _Global or cls.role != "csr_matrix":
            self.fail(f"NEWOBJ on {cls.role if type(cls) is _Global else type(cls).__name__}")
        if args:
            self.fail("csr_matrix.__new__ with arguments")
        self.charge(CSR_COST)
        self.stack.append(_Stub("csr_matrix"))

    def build(self) -> None:
        state = self.resolve(self.pop())
        target = self.pop()
        if type(target) is not _Stub:
            self.fail(f"BUILD on a {type(self.resolve(target)).__name__}")
        if target.result is not None:
            self.fail(f"second BUILD of a {target.kind}")
        if target.kind == "ndarray":
            if type(state) is not tuple or len(state) != 5:
                self.fail("ndarray state is not (version, shape, dtype, is_fortran, rawdata)")
            version, shape, dtype, fortran, raw = state
            if type(version) is not int or version != 1:
                self.fail("ndarray state version is not 1")
            if type(fortran) not in (bool, int) or fortran not in (0, 1):
                self.fail("ndarray is_fortran is not a bool")
            if type(raw) not in (bytes, str):
                self.fail(f"ndarray rawdata is a {type(raw).__name__}, not bytes")
            result = self.array(raw, dtype, shape, bool(fortran))
        elif target.kind == "dtype":
            result = self.dtype(target.name, state)
        else:
            result = self.csr(state)
        target.result = result
        self.stack.append(result)

    def dtype(self, name: str, state) -> np.dtype:
        if not (type(state) is tuple and len(state) == 8 and type(state[0]) is int and state[0] == 3):
            self.fail("dtype state is not a version-3 tuple of 8")
        _, order, subarray, names, fields, elsize, alignment, flags = state
        if not (subarray is None and names is None and fields is None):
            self.fail("dtype with fields or a subarray refused")
        if not all(type(v) is int for v in (elsize, alignment, flags)) or (elsize, alignment, flags) != (-1, -1, 0):
            self.fail("dtype state with explicit size, alignment or flags refused")
        if type(order) is not str or f"{order}{name}" not in _DTYPES:
            self.fail(f"byte order {ascii(order)[:10]} refused for dtype {name}")
        return _DTYPES[f"{order}{name}"]

    def array(self, raw, dtype, shape, fortran: bool) -> np.ndarray:
        if not (isinstance(dtype, np.dtype) and _DTYPES.get(dtype.str) is dtype):
            self.fail("array dtype is not an accepted numpy dtype")
        if type(shape) is not tuple or len(shape) > MAX_NDIM:
            self.fail(f"array shape is not a tuple of at most {MAX_NDIM} ints")
        if not all(type(d) is int and 0 <= d <= self.max_bytes for d in shape):
            self.fail("array shape has a negative, non-int or huge dimension")
        if math.prod(d for d in shape if d) > self.max_bytes:
            self.fail("array shape has too many elements")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != len(raw):
            self.fail(f"array of shape {shape} and dtype {dtype.str} needs {nbytes} bytes, rawdata has {len(raw)}")
        is_str = type(raw) is str
        self.charge(ARRAY_COST + nbytes, transient=2 * CHUNK if is_str else 0)
        if is_str:
            buf = np.empty(nbytes, np.uint8)
            for i in range(0, nbytes, CHUNK):
                try:
                    piece = raw[i : i + CHUNK].encode("latin1")
                except UnicodeEncodeError:
                    self.fail("array rawdata text is not latin-1")
                buf[i : i + len(piece)] = np.frombuffer(piece, np.uint8)
        else:
            buf = np.frombuffer(raw, np.uint8).copy()
        if dtype.kind == "b" and nbytes and buf.max() > 1:
            self.fail("boolean array holds bytes other than 0 and 1")
        return buf.view(dtype).reshape(shape, order="F" if fortran else "C")

    def csr(self, state):
        if type(state) is not dict or self.meta_of(state) is None:
            self.fail("csr_matrix state is not a dict")
        unknown = [k for k in state if type(k) is not str or k not in _CSR_KEYS]
        if unknown:
            self.fail(f"csr_matrix state key {ascii(unknown[0])[:60]} refused")
        if ("_shape" in state) == ("shape" in state):
            self.fail("csr_matrix state needs exactly one of _shape and shape")
        for k in ("data", "indices", "indptr"):
            v = state.get(k)
            if type(v) is not np.ndarray or v.ndim != 1:
                self.fail(f"csr_matrix {k} is not a 1-D array")
        data, indices, indptr = state["data"], state["indices"], state["indptr"]
        if data.dtype.kind not in _CSR_DATA_KINDS or data.dtype.str[1:] == "f2":
            self.fail(f"csr_matrix data dtype {data.dtype.str} refused")
        if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            self.fail("csr_matrix indices/indptr are not integer arrays")
        shape = state.get("_shape", state.get("shape"))
        if not (
            type(shape) is tuple and len(shape) == 2 and all(type(d) is int and 0 <= d <= MAX_CSR_DIM for d in shape)
        ):
            self.fail("csr_matrix shape is not two ints in [0, 2**31)")
        for k in ("maxprint", "_maxprint"):
            if k in state and type(state[k]) is not int:
                self.fail(f"csr_matrix {k} is not an int")
        if "format" in state and (type(state["format"]) is not str or state["format"] != "csr"):
            self.fail("csr_matrix format is not 'csr'")
        for k in _CSR_KEYS - {"data", "indices", "indptr", "_shape", "shape", "maxprint", "_maxprint", "format"}:
            if k in state and (type(state[k]) not in (bool, int) or state[k] not in (0, 1)):
                self.fail(f"csr_matrix {k} is not a bool")
        rows, cols = shape
        nnz = len(indices)
        if len(indptr) != rows + 1:
            self.fail(f"csr_matrix indptr has {len(indptr)} entries for {rows} rows")
        if len(data) != nnz:
            self.fail(f"csr_matrix has {len(data)} data values and {nnz} indices")
        # transient: the comparison below and scipy's possible index-dtype conversions
        self.charge(CSR_COST + 8 * (nnz + rows + 1) + data.nbytes, transient=rows + 1)
        if int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
            self.fail("csr_matrix indptr does not run from 0 to the number of stored values")
        if rows and bool(np.any(indptr[1:] < indptr[:-1])):
            self.fail("csr_matrix indptr decreases")
        if nnz and (int(indices.min()) < 0 or int(indices.max()) >= cols):
            self.fail(f"csr_matrix column index out of range [0, {cols})")
        import scipy.sparse  # only files holding a csr_matrix need scipy

        try:
            return scipy.sparse.csr_matrix((data, indices, indptr), shape=(rows, cols))
        except (ValueError, TypeError) as err:
            self.fail(f"csr_matrix refused by scipy: {' '.join(str(err).split())[:120]}")

    # ----------------------------------------------------------------- the loop

    def run(self):
        handlers = self.handlers()
        while True:
            self.op_pos = self.pos
            code = self.f.read(1)
            if type(code) is not bytes or len(code) > 1:
                self.fail("the stream's read() returned something other than the bytes asked for")
            if not code:
                self.op_name = "end of input"
                self.fail("truncated: no STOP")
            self.pos += 1
            info = pickletools.code2op.get(code.decode("latin1"))
            self.op_name = info.name if info is not None else f"0x{code[0]:02x}"
            self.ops += 1
            if self.ops > self.max_ops:
                self.fail(f"more than max_ops={self.max_ops} opcodes")
            self.charge(OP_COST)
            handler = handlers.get(code[0])
            if handler is None:
                self.fail("opcode refused" if info is not None else "unknown opcode")
            if handler():
                break
        if self.metastack or len(self.stack) != 1:
            self.fail(f"STOP with {len(self.stack)} values on the stack and {len(self.metastack)} open MARKs")
        result = self.resolve(self.stack.pop())
        if type(result) is _Global or (self.meta_of(result) is not None and self.meta_of(result).tainted):
            self.fail("the result refers to a global")
        self.op_pos, self.op_name = self.pos, "end of input"
        extra = self.f.read(1)
        if extra:
            self.fail("trailing data after STOP")
        return result

    def handlers(self) -> dict:
        s, u = self, struct.unpack

        def push(value):
            s.stack.append(value)

        def stop():
            return True

        def mark():
            if len(s.metastack) >= s.max_depth:
                s.fail(f"more than max_depth={s.max_depth} open MARKs")
            s.charge(CONTAINER_COST)
            s.metastack.append(s.stack)
            s.stack = []

        def pop_mark():
            s.pop_mark()

        def pop():
            if s.stack:
                s.stack.pop()
            else:
                s.pop_mark()

        def dup():
            push(s.top())

        def proto():
            v = s.read(1)[0]
            if v > 5:
                s.fail(f"protocol {v} unsupported")

        def frame():
            s.read(8)  # a length hint only; the opcodes inside are read one by one as usual

        def int_text():
            line = s.readline(MAX_SHORT_LINE)
            if line == b"00":
                push(False)
            elif line == b"01":
                push(True)
            else:
                push(s.text_int(line))

        def long_text():
            line = s.readline(MAX_SHORT_LINE)
            push(s.text_int(line[:-1] if line.endswith(b"L") else line))

        def long_bin(width):
            def op():
                n = u("<B" if width == 1 else "<i", s.read(width))[0]
                if not 0 <= n <= MAX_INT_BYTES:
                    s.fail(f"integer of {n} bytes refused")
                s.charge(OBJ_COST + n)
                push(int.from_bytes(s.read(n), "little", signed=True))

            return op

        def float_text():
            line = s.readline(MAX_SHORT_LINE)
            try:
                push(float(line))
            except ValueError:
                s.fail("malformed float text")

        def string_text():  # Python 2 str, escaped and quoted
            line = s.readline(s.left())
            if not (len(line) >= 2 and line[:1] == line[-1:] and line[:1] in (b"'", b'"')):
                s.fail("STRING argument is not quoted")
            s.charge(OBJ_COST + len(line), transient=3 * len(line))
            body = line[1:-1]
            if _STRING_BAD_ESCAPE.search(body.replace(b"\\\\", b"")):
                s.fail("STRING argument has an invalid escape")
            try:
                raw = codecs.escape_decode(body)[0]
            except ValueError:
                s.fail("STRING argument has an invalid escape")
            push(raw.decode("latin1"))

        def py2_string(fmt, width):
            def op():
                n = u(fmt, s.read(width))[0]
                push(s.read_payload(n).decode("latin1"))

            return op

        def unicode_text():
            line = s.readline(s.left())
            s.charge(OBJ_COST + 4 * len(line), transient=len(line))
            try:
                push(line.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                s.fail("malformed UNICODE argument")

        def unicode_bin(fmt, width):
            def op():
                data = s.read_payload(u(fmt, s.read(width))[0], keep_factor=4)
                try:
                    push(data.decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    s.fail("malformed UTF-8")

            return op

        def bytes_bin(fmt, width, kind=bytes):
            def op():
                data = s.read_payload(u(fmt, s.read(width))[0])
                push(bytearray(data) if kind is bytearray else data)

            return op

        def tuple_n(n):
            def op():
                if len(s.stack) < n:
                    s.fail("stack underflow")
                items = s.stack[len(s.stack) - n :]
                del s.stack[len(s.stack) - n :]
                push(s.new_tuple(items))

            return op

        def tuple_mark():
            push(s.new_tuple(s.pop_mark()))

        def list_mark():
            push(s.new_list(s.pop_mark()))

        def dict_mark():
            items = s.pop_mark()
            d = s.new_dict()
            s.set_items(d, items)
            push(d)

        def empty_list():
            push(s.new_list([]))

        def empty_dict():
            push(s.new_dict())

        def append():
            value = s.pop()
            s.extend(s.top(), [value])

        def appends():
            items = s.pop_mark()
            s.extend(s.top(), items)

        def setitem():
            value = s.pop()
            key = s.pop()
            s.set_items(s.top(), [key, value])

        def setitems():
            items = s.pop_mark()
            s.set_items(s.top(), items)

        def get_text():
            s.memo_get(s.small_int(s.readline(MAX_SHORT_LINE), "GET"))

        def put_text():
            s.memo_put(s.small_int(s.readline(MAX_SHORT_LINE), "PUT"))

        def memo_bin(fmt, width, op):
            return lambda: op(u(fmt, s.read(width))[0])

        def global_text():
            module = s.readline(MAX_NAME_LINE)
            name = s.readline(MAX_NAME_LINE)
            s.find_global(module.decode("latin1"), name.decode("latin1"))

        def stack_global():
            name = s.resolve(s.pop())
            module = s.resolve(s.pop())
            if type(module) is not str or type(name) is not str:
                s.fail("STACK_GLOBAL needs two str")
            s.find_global(module, name)

        def binint(fmt, width):
            return lambda: push(u(fmt, s.read(width))[0])

        return {
            ord("("): mark,
            ord("."): stop,
            ord("0"): pop,
            ord("1"): pop_mark,
            ord("2"): dup,
            0x80: proto,
            0x95: frame,
            ord("N"): lambda: push(None),
            0x88: lambda: push(True),
            0x89: lambda: push(False),
            ord("I"): int_text,
            ord("L"): long_text,
            ord("J"): binint("<i", 4),
            ord("K"): binint("<B", 1),
            ord("M"): binint("<H", 2),
            0x8A: long_bin(1),
            0x8B: long_bin(4),
            ord("F"): float_text,
            ord("G"): lambda: push(u(">d", s.read(8))[0]),
            ord("S"): string_text,
            ord("T"): py2_string("<i", 4),
            ord("U"): py2_string("<B", 1),
            ord("V"): unicode_text,
            ord("X"): unicode_bin("<I", 4),
            0x8C: unicode_bin("<B", 1),
            0x8D: unicode_bin("<Q", 8),
            ord("B"): bytes_bin("<I", 4),
            ord("C"): bytes_bin("<B", 1),
            0x8E: bytes_bin("<Q", 8),
            0x96: bytes_bin("<Q", 8, bytearray),
            ord(")"): tuple_n(0),
            0x85: tuple_n(1),
            0x86: tuple_n(2),
            0x87: tuple_n(3),
            ord("t"): tuple_mark,
            ord("]"): empty_list,
            ord("l"): list_mark,
            ord("}"): empty_dict,
            ord("d"): dict_mark,
            ord("a"): append,
            ord("e"): appends,
            ord("s"): setitem,
            ord("u"): setitems,
            ord("g"): get_text,
            ord("h"): memo_bin("<B", 1, s.memo_get),
            ord("j"): memo_bin("<I", 4, s.memo_get),
            ord("p"): put_text,
            ord("q"): memo_bin("<B", 1, s.memo_put),
            ord("r"): memo_bin("<I", 4, s.memo_put),
            0x94: lambda: s.memo_put(len(s.memo)),
            ord("c"): global_text,
            0x93: stack_global,
            ord("R"): s.reduce,
            0x81: s.newobj,
            ord("b"): s.build,
        }


def load(
    source: bytes | bytearray | memoryview | IO[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_ops: int = DEFAULT_MAX_OPS,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_memo: int = DEFAULT_MAX_MEMO,
    max_nodes: int = DEFAULT_MAX_NODES,
):
    """The value pickled in ``source`` (bytes-like, or a binary stream with ``read`` and ``readline``
    positioned at the pickle, which must run to the end of the stream), if it has one of the shapes
    the module docstring lists; else :class:`UnsafePickle`. See the module docstring for the bounds."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    elif not (hasattr(source, "read") and hasattr(source, "readline")):
        raise TypeError(f"load() needs bytes or a binary stream, not {type(source).__name__}")
    return _Reader(source, max_bytes, max_ops, max_depth, max_memo, max_nodes).run()
