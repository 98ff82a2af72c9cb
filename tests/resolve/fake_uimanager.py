"""A fake of Fusion's UIManager with the documented shapes (research §3, WI-README):
`ui.VGroup(props, children)`, elements built from a props dict, `bmd.UIDispatcher(ui)`,
`disp.AddWindow(props, children)`, `win.GetItems()`, handlers as `win.On.<ID>.<Event> = fn`,
`disp.RunLoop()` / `ExitLoop()`, and the community `ui.Timer({ID, Interval})` with Start/Stop
and a Timeout event. RunLoop hands control to a test-provided "user" that clicks and waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Element:
    def __init__(self, kind: str, props: dict | None = None, children: list | None = None):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "props", dict(props or {}))
        object.__setattr__(self, "children", list(children or []))
        object.__setattr__(self, "items", [])

    def __getattr__(self, name: str) -> Any:
        props = object.__getattribute__(self, "props")
        if name == "CurrentText" and "CurrentText" not in props:
            items, index = self.items, props.get("CurrentIndex", 0)
            return items[index] if 0 <= index < len(items) else ""
        return props.get(name, {"Enabled": True, "Checked": False, "Value": 0}.get(name, ""))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "CurrentText" and value in self.items:
            self.props["CurrentIndex"] = self.items.index(value)
            self.props.pop("CurrentText", None)
            return
        if name == "CurrentIndex":
            self.props.pop("CurrentText", None)
        self.props[name] = value

    def AddItems(self, items: list) -> None:  # noqa: N802
        self.items.extend(items)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


class _Events:
    def __init__(self) -> None:
        object.__setattr__(self, "handlers", {})

    def __getattr__(self, element_id: str) -> Any:
        handlers = self.handlers

        class Slot:
            def __setattr__(self, event: str, fn: Callable) -> None:
                handlers[(element_id, event)] = fn

        return Slot()


class Window(Element):
    def __init__(self, props: dict, children: list) -> None:
        super().__init__("Window", props, children)
        object.__setattr__(self, "On", _Events())
        object.__setattr__(self, "shown", False)

    def GetItems(self) -> dict:  # noqa: N802
        return {e.props["ID"]: e for e in self.walk() if "ID" in e.props}

    def Show(self) -> None:  # noqa: N802
        object.__setattr__(self, "shown", True)

    def Hide(self) -> None:  # noqa: N802
        object.__setattr__(self, "shown", False)

    def fire(self, element_id: str, event: str) -> None:
        self.On.handlers[(element_id, event)]({"who": element_id, "what": event})


class Timer:
    def __init__(self, props: dict) -> None:
        self.id, self.interval, self.running = props["ID"], props.get("Interval", 100), False

    def Start(self) -> None:  # noqa: N802
        self.running = True

    def Stop(self) -> None:  # noqa: N802
        self.running = False


class FakeUIManager:
    def __init__(self, timers_fire: bool = True) -> None:
        self.timers: list[Timer] = []
        self.timers_fire = timers_fire  # some Fusion builds never fire Timeout

    def __getattr__(self, kind: str) -> Callable[..., Element]:
        if not kind[:1].isupper():
            raise AttributeError(kind)

        def build(props: Any = None, children: Any = None) -> Element:
            if isinstance(props, list):  # VGroup([children]) without props
                props, children = {}, props
            return Element(kind, props, children)

        return build

    def Timer(self, props: dict) -> Timer:  # noqa: N802
        timer = Timer(props)
        self.timers.append(timer)
        return timer


class Dispatcher:
    def __init__(self, ui: FakeUIManager, user: Callable[[Dispatcher], None]) -> None:
        self.ui, self.user = ui, user
        self.window: Window | None = None
        self.exited = False

    def AddWindow(self, props: dict, children: list) -> Window:  # noqa: N802
        self.window = Window(props, children)
        return self.window

    def RunLoop(self) -> int:  # noqa: N802
        self.user(self)
        return 0

    def ExitLoop(self, code: int = 0) -> None:  # noqa: N802
        self.exited = True

    # -- what the test's "user" does ---------------------------------------------------------
    def click(self, element_id: str) -> None:
        self.window.fire(element_id, "Clicked")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Let time pass, firing running timers' Timeout events, until `predicate()`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the dialog never reached the expected state")
            for timer in self.ui.timers:
                if timer.running and self.ui.timers_fire:
                    self.window.fire(timer.id, "Timeout")
            time.sleep(0.02)

    def text(self, element_id: str) -> str:
        item = self.window.GetItems()[element_id]
        return str(item.props.get("HTML") or item.props.get("Text") or "")


class FakeBmd:
    def __init__(self, user: Callable[[Dispatcher], None]) -> None:
        self.user = user
        self.dispatchers: list[Dispatcher] = []

    def UIDispatcher(self, ui: FakeUIManager) -> Dispatcher:  # noqa: N802
        disp = Dispatcher(ui, self.user)
        self.dispatchers.append(disp)
        return disp
