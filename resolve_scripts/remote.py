"""The hand-off: Resolve's object model served from inside Resolve to an external EdiDub process.

Why (research §2.5, §6): the free edition refuses external scripting (`scriptapp` from another
process), free 19.1+ has no UIManager, free 21.1+ lists only Lua menu scripts, and Resolve's
own Python may not be the one EdiDub's compiled dependencies (grpc, numpy) were built for. The
one design that works on every edition: a thin script INSIDE Resolve (the Lua launcher, or the
Python menu script when it cannot import EdiDub) starts `python -m resolve_scripts.commands
resolve dub --handoff DIR` (= `edidub resolve dub`) and executes, one by one, the Resolve
calls that process asks for. The external process runs the unchanged workflow over
`RemoteObject`, a proxy that looks like the `resolve` object, so the one adapter and its tests
cover this path too.

Wire (line oriented, stdlib only on both ends):
- external -> Resolve: one request per line on the external process's STDOUT, in Lua table
  syntax for the Lua launcher or JSON for the Python server:
  `{op="call", id=7, h=3, m="GetStart", a={}}` / `{"op": "call", ...}`;
  ops: call (method `m` on handle `h` with args `a`), has (which of `names` exist on `h`:
  `dir()` for the proxy), print (show `text` in Resolve's console), done.
  Handles in arguments are `H[n]` (Lua) or `{"$h": n}` (JSON). Handle 0 is `resolve`.
- Resolve -> external: `DIR/<id>.json` written atomically (temp + rename):
  `{"id": 7, "ok": true, "v": ...}` with objects as `{"$h": n}`, or `{"ok": false, "err": "..."}`.

This module imports only the standard library: the in-Resolve Python server must run in
whatever Python Resolve embeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

HANDOFF_ENV = "EDIDUB_HANDOFF"


class HandoffError(RuntimeError):
    pass


# -- external side: the proxy ------------------------------------------------------------------
def to_lua(value: Any) -> str:
    """A Python value as a Lua literal (handles as H[n])."""
    if isinstance(value, RemoteObject):
        return f"H[{value._handle}]"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        pairs = (f"[{lua_string(str(k))}]={to_lua(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"cannot send {type(value).__name__} to Resolve")


def lua_string(text: str) -> str:
    """A Lua 5.1 string literal: UTF-8 bytes kept, quotes, backslashes and controls escaped as
    decimal (5.1 has no \\u escapes)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def to_json(value: Any) -> Any:
    if isinstance(value, RemoteObject):
        return {"$h": value._handle}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


class Link:
    """The external end: writes requests, waits for the response files."""

    def __init__(self, out: TextIO, folder: Path, syntax: str = "lua",
                 timeout_s: float = 600.0) -> None:
        if syntax not in ("lua", "json"):
            raise ValueError(f"unknown hand-off syntax {syntax!r}")
        self._out, self._folder, self._syntax = out, Path(folder), syntax
        self._timeout = timeout_s
        self._next = 0
        self._methods: dict[int, list[str]] = {}

    def _send(self, request: dict) -> None:
        if self._syntax == "lua":
            line = to_lua(request)
        else:
            line = json.dumps(to_json(request))
        self._out.write(line.replace("\n", " ") + "\n")
        self._out.flush()

    def request(self, op: str, **fields: Any) -> Any:
        self._next += 1
        rid = self._next
        self._send({"op": op, "id": rid, **fields})
        path = self._folder / f"{rid}.json"
        deadline = time.monotonic() + self._timeout
        pause = 0.0005
        while not path.exists():
            if time.monotonic() > deadline:
                raise HandoffError(f"Resolve did not answer request {rid} ({op} {fields.get('m')})")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        reply = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()
        if not reply.get("ok"):
            raise HandoffError(f"Resolve: {reply.get('err')}")
        return self._wrap(reply.get("v"))

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$h"}:
                return RemoteObject(self, int(value["$h"]))
            return {k: self._wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._wrap(v) for v in value]
        return value

    def call(self, handle: int, method: str, args: tuple) -> Any:
        return self.request("call", h=handle, m=method, a=list(args))

    def methods(self, handle: int) -> list[str]:
        if handle not in self._methods:
            from resolve_scripts.adapter import API_NAMES

            self._methods[handle] = list(self.request("has", h=handle, names=sorted(API_NAMES))
                                         or [])
        return self._methods[handle]

    def print(self, text: str) -> None:
        self._send({"op": "print", "text": str(text)})

    def done(self) -> None:
        self._send({"op": "done"})


class RemoteObject:
    """Looks like a Resolve object: attribute access gives a callable; dir() lists methods."""

    def __init__(self, link: Link, handle: int) -> None:
        self._link, self._handle = link, handle

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._link.call(self._handle, name, args)

    def __dir__(self) -> list[str]:
        return self._link.methods(self._handle)

    def __repr__(self) -> str:
        return f"<Resolve object #{self._handle}>"


def connect_handoff(folder: Path, syntax: str = "lua",
                    out: TextIO | None = None) -> tuple[RemoteObject, Link]:
    """The external process's `resolve`, served by the script that started it. The process's
    real stdout becomes the request channel; later prints go to stderr."""
    channel = out or sys.stdout
    if out is None:
        sys.stdout = sys.stderr
    link = Link(channel, Path(folder), syntax)
    return RemoteObject(link, 0), link


# -- Resolve side: the Python server (the Lua launcher holds the same loop in Lua) -------------
def serve(resolve: Any, lines: Iterable[str], folder: Path,
          log: Callable[[str], None] = print) -> None:
    """Execute JSON requests against `resolve` until "done" or the stream ends."""
    folder = Path(folder)
    handles: list[Any] = [resolve]
    ids: dict[int, int] = {id(resolve): 0}

    def encode(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        key = id(value)
        if key not in ids:
            ids[key] = len(handles)
            handles.append(value)
        return {"$h": ids[key]}

    def decode(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$h"}:
                return handles[int(value["$h"])]
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    def reply(rid: int, payload: dict) -> None:
        tmp = folder / f".{rid}.tmp"
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, folder / f"{rid}.json")

    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError:
            log(f"EdiDub: {line}")  # the external process printed something else
            continue
        op, rid = request.get("op"), request.get("id")
        if op == "done":
            return
        if op == "print":
            log(f"EdiDub: {request.get('text')}")
            continue
        try:
            target = handles[int(request["h"])]
            if op == "has":
                names = set(dir(target))
                value = [n for n in request["names"] if n in names]
            elif op == "call":
                fn = getattr(target, request["m"], None)
                if fn is None:
                    raise HandoffError(f"{request['m']} is not available in this Resolve")
                value = encode(fn(*decode(request.get("a") or [])))
            else:
                raise HandoffError(f"unknown op {op!r}")
            reply(rid, {"id": rid, "ok": True, "v": value if op == "has" else value})
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply(rid, {"id": rid, "ok": False, "err": f"{type(exc).__name__}: {exc}"})


def run_handoff(resolve: Any, python: str, args: list[str], folder: Path | None = None,
                log: Callable[[str], None] = print) -> int:
    """Start the external EdiDub process and serve it (Python menu script fallback)."""
    import tempfile

    own = folder is None
    work = Path(tempfile.mkdtemp(prefix="edidub-handoff-")) if own else Path(folder)
    cmd = [python, "-m", "resolve_scripts.commands", "resolve", "dub", "--handoff", str(work),
           "--handoff-syntax", "json", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        serve(resolve, proc.stdout, work, log)
        code = proc.wait()
    if own:
        import shutil

        shutil.rmtree(work, ignore_errors=True)  # the external process may have removed it
    return code


def ask_audio(fusion: Any) -> str | None:
    """Ask for the new line with Fusion's file requester where the edition offers it."""
    if fusion is None:
        return None
    for args in (("", "", {"FReqS_Title": "EdiDub: the new line (WAV)"}), ()):
        try:
            picked = fusion.RequestFile(*args)
        except Exception:  # noqa: BLE001 - not offered here, or another signature
            continue
        if isinstance(picked, str) and picked:
            return picked
    return None
