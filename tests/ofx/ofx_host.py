"""A small OFX host in Python (ctypes), modelled on pyofx, strict where the plugin could cheat.

It loads a real `.ofx` binary and implements the suites the EdiDub plugin fetches: property,
image effect (with clipGetImage at any time for temporal access), parameter (its variadic entry
points live in host_shim.c), memory, message and progress (v2 and v1). Images are numpy arrays
in OFX layout (rows bottom-up, lower-left origin), placed in host buffers with padded or negative
rowBytes so a plugin that ignores rowBytes or bounds produces wrong pixels.

Checks it enforces (recorded in `violations`): images fetched in an action must be released
before it returns; clipGetImage away from the render time needs declared temporal access; in
InstanceChanged only with kOfxChangeUserEdited; host memory must be freed.
"""

from __future__ import annotations

import ctypes as C
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OK, FAILED, ERR_UNKNOWN, ERR_BAD_HANDLE, ERR_UNSUPPORTED, REPLY_NO, REPLY_DEFAULT = (
    0, 1, 3, 9, 5, 13, 14)

# Re-declared from the OpenFX headers (ofxCore.h, ofxProperty.h, ofxImageEffect.h, ofxParam.h,
# ofxMemory.h, ofxMessage.h, ofxProgress.h), like the plugin does on its side.
P = C.c_void_p
STAT = C.c_int
ENTRY = C.CFUNCTYPE(STAT, C.c_char_p, P, P, P)
FETCH = C.CFUNCTYPE(P, P, C.c_char_p, C.c_int)


class OfxHostStruct(C.Structure):
    _fields_ = [("host", P), ("fetchSuite", FETCH)]


class OfxPluginStruct(C.Structure):
    _fields_ = [("pluginApi", C.c_char_p), ("apiVersion", C.c_int),
                ("pluginIdentifier", C.c_char_p), ("pluginVersionMajor", C.c_uint),
                ("pluginVersionMinor", C.c_uint),
                ("setHost", C.CFUNCTYPE(None, C.POINTER(OfxHostStruct))),
                ("mainEntry", ENTRY)]


def _fn(*args):
    return C.CFUNCTYPE(STAT, *args)


PROP_FIELDS = [
    ("propSetPointer", _fn(P, C.c_char_p, C.c_int, P)),
    ("propSetString", _fn(P, C.c_char_p, C.c_int, C.c_char_p)),
    ("propSetDouble", _fn(P, C.c_char_p, C.c_int, C.c_double)),
    ("propSetInt", _fn(P, C.c_char_p, C.c_int, C.c_int)),
    ("propSetPointerN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propSetStringN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propSetDoubleN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propSetIntN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetPointer", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetString", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetDouble", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetInt", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetPointerN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetStringN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetDoubleN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propGetIntN", _fn(P, C.c_char_p, C.c_int, P)),
    ("propReset", _fn(P, C.c_char_p)),
    ("propGetDimension", _fn(P, C.c_char_p, P)),
]
EFFECT_FIELDS = [
    ("getPropertySet", _fn(P, P)),
    ("getParamSet", _fn(P, P)),
    ("clipDefine", _fn(P, C.c_char_p, P)),
    ("clipGetHandle", _fn(P, C.c_char_p, P, P)),
    ("clipGetPropertySet", _fn(P, P)),
    ("clipGetImage", _fn(P, C.c_double, P, P)),
    ("clipReleaseImage", _fn(P)),
    ("clipGetRegionOfDefinition", _fn(P, C.c_double, P)),
    ("abort", C.CFUNCTYPE(C.c_int, P)),
    ("imageMemoryAlloc", _fn(P, C.c_size_t, P)),
    ("imageMemoryFree", _fn(P)),
    ("imageMemoryLock", _fn(P, P)),
    ("imageMemoryUnlock", _fn(P)),
]
PARAM_FIELDS = [
    ("paramDefine", _fn(P, C.c_char_p, C.c_char_p, P)),
    ("paramGetHandle", _fn(P, C.c_char_p, P, P)),
    ("paramSetGetPropertySet", _fn(P, P)),
    ("paramGetPropertySet", _fn(P, P)),
    ("paramGetValue", P), ("paramGetValueAtTime", P), ("paramGetDerivative", P),
    ("paramGetIntegral", P), ("paramSetValue", P), ("paramSetValueAtTime", P),
    ("paramGetNumKeys", P), ("paramGetKeyTime", P), ("paramGetKeyIndex", P),
    ("paramDeleteKey", P), ("paramDeleteAllKeys", P), ("paramCopy", P),
    ("paramEditBegin", P), ("paramEditEnd", P),
]
MEMORY_FIELDS = [("memoryAlloc", _fn(P, C.c_size_t, P)), ("memoryFree", _fn(P))]
MESSAGE_FIELDS = [("message", P)]
PROGRESS_V1_FIELDS = [("progressStart", _fn(P, C.c_char_p)),
                      ("progressUpdate", _fn(P, C.c_double)), ("progressEnd", _fn(P))]
PROGRESS_V2_FIELDS = [("progressStart", _fn(P, C.c_char_p, C.c_char_p)),
                      ("progressUpdate", _fn(P, C.c_double)), ("progressEnd", _fn(P))]


def _struct(name: str, fields) -> type[C.Structure]:
    return type(name, (C.Structure,), {"_fields_": fields})


SUITES = {
    ("OfxPropertySuite", 1): _struct("PropertySuiteV1", PROP_FIELDS),
    ("OfxImageEffectSuite", 1): _struct("ImageEffectSuiteV1", EFFECT_FIELDS),
    ("OfxParameterSuite", 1): _struct("ParameterSuiteV1", PARAM_FIELDS),
    ("OfxMemorySuite", 1): _struct("MemorySuiteV1", MEMORY_FIELDS),
    ("OfxMessageSuite", 1): _struct("MessageSuiteV1", MESSAGE_FIELDS),
    ("OfxProgressSuite", 1): _struct("ProgressSuiteV1", PROGRESS_V1_FIELDS),
    ("OfxProgressSuite", 2): _struct("ProgressSuiteV2", PROGRESS_V2_FIELDS),
}

PARAM_KINDS = {  # OFX param type -> (shim kind, value count)
    "OfxParamTypeInteger": (0, 1), "OfxParamTypeBoolean": (0, 1), "OfxParamTypeChoice": (0, 1),
    "OfxParamTypeDouble": (1, 1), "OfxParamTypeString": (2, 1), "OfxParamTypePushButton": (3, 0),
}


class PropSet(dict):
    """name -> list of values; a handle is its id in the host's table."""


@dataclass
class Image:
    props: PropSet
    buffer: np.ndarray  # raw bytes kept alive while the plugin holds the image
    time: float


@dataclass
class Param:
    name: str
    kind: str
    props: PropSet
    value: object = None


@dataclass
class Instance:
    host: OfxHost
    handle: int
    props: PropSet
    clips: dict[str, int]
    params: dict[str, int]
    frames: dict[int, np.ndarray]  # the Source clip: frame -> (H, W, 4) float32 bottom-up
    # other input clips (e.g. a mask): name -> frame -> (H, W, 4 or 1) float32 bottom-up
    inputs: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    props_handle: int = 0
    action: str = ""
    render_time: float | None = None
    change_reason: str = ""

    def param(self, name: str) -> Param:
        return self.host.objects[self.params[name]]

    def set_param(self, name: str, value) -> None:
        self.param(name).value = value

    def press(self, name: str, reason: str = "OfxChangeUserEdited") -> int:
        """A user click on a push button: kOfxActionInstanceChanged for that parameter."""
        args = self.host.new_props(OfxPropType=["OfxTypeParameter"], OfxPropName=[name],
                                   OfxPropChangeReason=[reason], OfxPropTime=[0.0],
                                   OfxImageEffectPropRenderScale=[1.0, 1.0])
        self.change_reason = reason
        try:
            return self.host.call("OfxActionInstanceChanged", self, args)
        finally:
            self.change_reason = ""

    def render(self, time: float, row_pad: int = 0, top_down: bool = False) -> np.ndarray:
        """Render one frame into an output buffer laid out as asked; returns its pixels."""
        height, width = self.frames[int(time)].shape[:2]
        out = self.host.make_image(np.full((height, width, 4), np.nan, np.float32), time,
                                   row_pad, top_down)
        self.host.output_images[self.handle] = out
        args = self.host.new_props(OfxPropTime=[float(time)],
                                   OfxImageEffectPropFieldToRender=["OfxImageFieldNone"],
                                   OfxImageEffectPropRenderWindow=[0, 0, width, height],
                                   OfxImageEffectPropRenderScale=[1.0, 1.0],
                                   OfxImageEffectPropSequentialRenderStatus=[0],
                                   OfxImageEffectPropInteractiveRenderStatus=[0])
        self.render_time = time
        try:
            status = self.host.call("OfxImageEffectActionRender", self, args)
        finally:
            self.render_time = None
        if status != OK:
            raise RuntimeError(f"render at {time} returned status {status}")
        return self.host.image_pixels(out)

    def destroy(self) -> None:
        self.host.call("OfxActionDestroyInstance", self, None)


@dataclass
class Progress:
    starts: list[str] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    ends: int = 0
    cancel_when: Callable[[float], bool] = lambda fraction: False


class OfxHost:
    """Load one plugin binary and drive it through the OFX action sequence."""

    def __init__(self, binary: Path, shim: Path, supports_progress: bool = True) -> None:
        self.lib = C.CDLL(str(binary))
        self.shim = C.CDLL(str(shim))
        self.objects: dict[int, object] = {}
        self._ids = itertools.count(0x10000, 16)
        self._keep: list = []  # ctypes objects the plugin may point into
        self._strings: dict[tuple[int, str, int], C.Array] = {}
        self.messages: list[tuple[str, str, str]] = []
        self.timeline: list[str] = []  # progressStart/progressEnd/message:<type>, in order
        self.progress = Progress()
        self.violations: list[str] = []
        self.callback_s = 0.0  # time spent inside the host's own callbacks (benchmarks)
        self.last_plugin_s = 0.0
        self.memory: dict[int, C.Array] = {}
        self.fetched: list[tuple[str, int]] = []
        self.open_images: dict[int, Image] = {}
        self.output_images: dict[int, Image] = {}
        self.supports_progress = supports_progress
        self.host_props = self.new_props(
            OfxPropName=["org.edidub.testhost"], OfxPropLabel=["EdiDub test host"],
            OfxImageEffectHostPropIsBackground=[0], OfxImageEffectPropSupportsTiles=[0],
            OfxImageEffectPropTemporalClipAccess=[1],
            OfxImageEffectPropSupportsMultiResolution=[0],
            OfxImageEffectPropSupportedContexts=["OfxImageEffectContextFilter",
                                                 "OfxImageEffectContextGeneral"],
            OfxImageEffectPropSupportedPixelDepths=["OfxBitDepthFloat"],
            OfxImageEffectPropSupportedComponents=["OfxImageComponentRGBA"])
        self._suites = self._build_suites()
        self._fetch = FETCH(self._fetch_suite)
        self.host_struct = OfxHostStruct(P(self.host_props), self._fetch)
        self.lib.OfxGetNumberOfPlugins.restype = C.c_int
        self.lib.OfxGetPlugin.restype = C.POINTER(OfxPluginStruct)
        self.lib.OfxGetPlugin.argtypes = [C.c_int]
        count = self.lib.OfxGetNumberOfPlugins()
        if count < 1:
            raise RuntimeError(f"{binary}: OfxGetNumberOfPlugins() = {count}")
        self.plugin = self.lib.OfxGetPlugin(0).contents
        self.plugin.setHost(C.pointer(self.host_struct))
        self.descriptor: PropSet | None = None
        self.descriptor_handle = 0
        self.context_clips: dict[str, PropSet] = {}
        self.context_params: dict[str, Param] = {}

    # -- handles -------------------------------------------------------------------------

    def register(self, obj) -> int:
        handle = next(self._ids)
        self.objects[handle] = obj
        return handle

    def new_props(self, **values) -> int:
        props = PropSet({k: list(v) for k, v in values.items()})
        return self.register(props)

    def props(self, handle) -> PropSet:
        obj = self.objects.get(handle or 0)
        if not isinstance(obj, PropSet):
            raise KeyError(handle)
        return obj

    # -- the property suite ----------------------------------------------------------------

    def _set(self, h, name, index, value) -> int:
        try:
            values = self.props(h).setdefault(name.decode(), [])
        except KeyError:
            return ERR_BAD_HANDLE
        while len(values) <= index:
            values.append(None)
        values[index] = value
        return OK

    def _get(self, h, name, index):
        try:
            values = self.props(h)[name.decode()]
            return values[index]
        except (KeyError, IndexError):
            return None

    def _set_n(self, h, name, count, ptr, ctype, convert=lambda v: v) -> int:
        array = C.cast(ptr, C.POINTER(ctype))
        try:
            self.props(h)[name.decode()] = [convert(array[i]) for i in range(count)]
        except KeyError:
            return ERR_BAD_HANDLE
        return OK

    def _get_into(self, h, name, index, out, ctype) -> int:
        value = self._get(h, name, index)
        if value is None:
            return ERR_UNKNOWN
        C.cast(out, C.POINTER(ctype))[0] = value
        return OK

    def _get_string(self, h, name, index, out) -> int:
        value = self._get(h, name, index)
        if value is None:
            return ERR_UNKNOWN
        buf = C.create_string_buffer(str(value).encode())
        self._strings[(h, name, index)] = buf  # valid until the property changes
        C.cast(out, C.POINTER(P))[0] = C.addressof(buf)
        return OK

    def _get_n(self, h, name, count, out, getter) -> int:
        for i in range(count):
            status = getter(h, name, i, out + i * self._size[getter])
            if status != OK:
                return status
        return OK

    def _build_suites(self) -> dict:
        S = SUITES
        dbl, intp = C.c_double, C.c_int
        get_int = lambda h, n, i, o: self._get_into(h, n, i, o, intp)  # noqa: E731
        get_dbl = lambda h, n, i, o: self._get_into(h, n, i, o, dbl)  # noqa: E731
        get_ptr = lambda h, n, i, o: self._get_into(h, n, i, o, P)  # noqa: E731
        self._size = {get_int: 4, get_dbl: 8, get_ptr: 8, self._get_string: 8}
        impl = {
            "propSetPointer": lambda h, n, i, v: self._set(h, n, i, v or 0),
            "propSetString": lambda h, n, i, v: self._set(h, n, i, v.decode()),
            "propSetDouble": lambda h, n, i, v: self._set(h, n, i, float(v)),
            "propSetInt": lambda h, n, i, v: self._set(h, n, i, int(v)),
            "propSetPointerN": lambda h, n, c, p: self._set_n(h, n, c, p, P),
            "propSetStringN": lambda h, n, c, p: self._set_n(h, n, c, p, C.c_char_p,
                                                             lambda b: b.decode()),
            "propSetDoubleN": lambda h, n, c, p: self._set_n(h, n, c, p, dbl),
            "propSetIntN": lambda h, n, c, p: self._set_n(h, n, c, p, intp),
            "propGetPointer": get_ptr,
            "propGetString": self._get_string,
            "propGetDouble": get_dbl,
            "propGetInt": get_int,
            "propGetPointerN": lambda h, n, c, o: self._get_n(h, n, c, o, get_ptr),
            "propGetStringN": lambda h, n, c, o: self._get_n(h, n, c, o, self._get_string),
            "propGetDoubleN": lambda h, n, c, o: self._get_n(h, n, c, o, get_dbl),
            "propGetIntN": lambda h, n, c, o: self._get_n(h, n, c, o, get_int),
            "propReset": lambda h, n: OK,
            "propGetDimension": self._prop_dimension,
            "getPropertySet": self._effect_props,
            "getParamSet": self._effect_param_set,
            "clipDefine": self._clip_define,
            "clipGetHandle": self._clip_get_handle,
            "clipGetPropertySet": self._clip_props,
            "clipGetImage": self._clip_get_image,
            "clipReleaseImage": self._clip_release_image,
            "clipGetRegionOfDefinition": lambda clip, t, out: ERR_UNSUPPORTED,
            "abort": lambda effect: 0,
            "imageMemoryAlloc": lambda e, n, out: ERR_UNSUPPORTED,
            "imageMemoryFree": lambda m: ERR_UNSUPPORTED,
            "imageMemoryLock": lambda m, out: ERR_UNSUPPORTED,
            "imageMemoryUnlock": lambda m: ERR_UNSUPPORTED,
            "paramDefine": self._param_define,
            "paramGetHandle": self._param_get_handle,
            "paramSetGetPropertySet": lambda s, out: ERR_UNSUPPORTED,
            "paramGetPropertySet": self._param_props,
            "memoryAlloc": self._memory_alloc,
            "memoryFree": self._memory_free,
        }
        shim_names = {"paramGetValue": "shim_paramGetValue",
                      "paramGetValueAtTime": "shim_paramGetValueAtTime",
                      "paramSetValue": "shim_paramSetValue",
                      "paramSetValueAtTime": "shim_paramSetValueAtTime",
                      "message": "shim_message"}
        suites = {}
        for key, struct_type in S.items():
            values = {}
            for name, ftype in struct_type._fields_:
                if name in shim_names:
                    values[name] = C.cast(getattr(self.shim, shim_names[name]), P).value
                elif key[0] == "OfxProgressSuite":
                    values[name] = ftype(self._guard(name, self._progress_impl(name, key[1])))
                elif name in impl:
                    values[name] = ftype(self._guard(name, impl[name]))
                else:
                    values[name] = None  # never called by this plugin; NULL would crash loudly
            suites[key] = struct_type(**values)
        kind_t = C.CFUNCTYPE(C.c_int, P)
        get_t = C.CFUNCTYPE(C.c_int, P, C.c_double, C.POINTER(P), C.c_int)
        set_int_t = C.CFUNCTYPE(C.c_int, P, C.POINTER(C.c_int), C.c_int)
        set_dbl_t = C.CFUNCTYPE(C.c_int, P, C.POINTER(C.c_double), C.c_int)
        set_str_t = C.CFUNCTYPE(C.c_int, P, C.c_char_p)
        msg_t = C.CFUNCTYPE(C.c_int, P, C.c_char_p, C.c_char_p, C.c_char_p)
        g = self._guard
        callbacks = (kind_t(g("kind", self._param_kind)), get_t(g("get", self._param_get)),
                     set_int_t(lambda p, v, n: self._param_set(p, [v[i] for i in range(n)])),
                     set_dbl_t(lambda p, v, n: self._param_set(p, [v[i] for i in range(n)])),
                     set_str_t(lambda p, v: self._param_set(p, [v.decode()])),
                     msg_t(g("message", self._message)))
        self._keep.append(callbacks)
        self.shim.shim_install(*callbacks)
        return suites

    def _guard(self, name: str, fn):
        """A Python error inside a callback must not read as kOfxStatOK (ctypes returns 0)."""
        def call(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            except Exception as exc:  # recorded; the test fails on violations
                self.violations.append(f"{name}{args!r}: {exc!r}")
                return ERR_UNKNOWN
            finally:
                self.callback_s += time.perf_counter() - start
        return call

    def _prop_dimension(self, h, name, out) -> int:
        try:
            values = self.props(h).get(name.decode())
        except KeyError:
            return ERR_BAD_HANDLE
        if values is None:
            return ERR_UNKNOWN
        C.cast(out, C.POINTER(C.c_int))[0] = len(values)
        return OK

    def _fetch_suite(self, _host, name, version):
        key = (name.decode(), version)
        self.fetched.append(key)
        if key[0] == "OfxProgressSuite" and not self.supports_progress:
            return None
        suite = self._suites.get(key)
        return C.addressof(suite) if suite is not None else None

    # -- image effect suite -------------------------------------------------------------

    def _instance(self, handle) -> Instance | None:
        obj = self.objects.get(handle or 0)
        return obj if isinstance(obj, Instance) else None

    def _effect_props(self, effect, out) -> int:
        inst = self._instance(effect)
        if inst is not None:
            handle = inst.props_handle
        elif effect == self.descriptor_handle:
            handle = self._descriptor_props_handle
        else:
            return ERR_BAD_HANDLE
        C.cast(out, C.POINTER(P))[0] = handle
        return OK

    def _effect_param_set(self, effect, out) -> int:
        C.cast(out, C.POINTER(P))[0] = effect  # the effect handle doubles as its param set
        return OK

    def _clip_define(self, effect, name, out) -> int:
        props = PropSet(OfxPropName=[name.decode()])
        self.context_clips[name.decode()] = props
        C.cast(out, C.POINTER(P))[0] = self.register(props)
        return OK

    def _clip_get_handle(self, effect, name, out_clip, out_props) -> int:
        inst = self._instance(effect)
        if inst is None or name.decode() not in inst.clips:
            return ERR_UNKNOWN
        clip = inst.clips[name.decode()]
        C.cast(out_clip, C.POINTER(P))[0] = clip
        if out_props:
            C.cast(out_props, C.POINTER(P))[0] = self.objects[clip][1]
        return OK

    def _clip_props(self, clip, out) -> int:
        entry = self.objects.get(clip or 0)
        if not isinstance(entry, tuple):
            return ERR_BAD_HANDLE
        C.cast(out, C.POINTER(P))[0] = entry[1]
        return OK

    def _clip_get_image(self, clip, time, region, out) -> int:
        entry = self.objects.get(clip or 0)
        if not isinstance(entry, tuple):
            return ERR_BAD_HANDLE
        inst, _props_handle, name = entry
        if name == "Output":
            image = self.output_images.get(inst.handle)
            if image is None or inst.action != "OfxImageEffectActionRender":
                self.violations.append(f"Output image fetched outside render ({inst.action})")
                return FAILED
        else:
            if inst.action == "OfxActionInstanceChanged" and (
                    inst.change_reason != "OfxChangeUserEdited"):
                self.violations.append("clipGetImage in InstanceChanged without UserEdited")
            if inst.render_time is not None and time != inst.render_time and not (
                    self.descriptor.get("OfxImageEffectPropTemporalClipAccess") == [1]
                    and self.context_clips["Source"].get(
                        "OfxImageEffectPropTemporalClipAccess") == [1]):
                self.violations.append(f"temporal access at {time} without declaring it")
            frame = int(round(time))
            frames = inst.frames if name == "Source" else inst.inputs.get(name, {})
            if frame not in frames:
                return FAILED  # no image at that time: transparent black by the spec
            image = self.make_image(frames[frame], time, row_pad=24, top_down=True)
        handle = self.register(image.props)
        self.open_images[handle] = image
        C.cast(out, C.POINTER(P))[0] = handle
        return OK

    def _clip_release_image(self, handle) -> int:
        if self.open_images.pop(handle or 0, None) is None:
            return ERR_BAD_HANDLE
        return OK

    # -- images ---------------------------------------------------------------------------

    def make_image(self, pixels: np.ndarray, time: float, row_pad: int = 0,
                   top_down: bool = False) -> Image:
        """An image in a host buffer: rows `row_pad` bytes longer than needed; `top_down`
        stores the top row first in memory, which makes rowBytes negative (ofxImageEffect.h
        allows it for CPU images)."""
        height, width, channels = pixels.shape
        pixel_bytes = channels * 4
        stride = width * pixel_bytes + row_pad
        buffer = np.full(stride * height, 0xAB, dtype=np.uint8)  # padding holds junk
        rows = buffer.reshape(height, stride)
        memory_rows = pixels[::-1] if top_down else pixels
        rows[:, : width * pixel_bytes] = np.ascontiguousarray(memory_rows, np.float32).view(
            np.uint8).reshape(height, width * pixel_bytes)
        base = buffer.ctypes.data
        data = base + (height - 1) * stride if top_down else base
        props = PropSet(OfxImagePropData=[data], OfxImagePropBounds=[0, 0, width, height],
                        OfxImagePropRegionOfDefinition=[0, 0, width, height],
                        OfxImagePropRowBytes=[-stride if top_down else stride],
                        OfxImageEffectPropPixelDepth=["OfxBitDepthFloat"],
                        OfxImageEffectPropComponents=[
                            "OfxImageComponentAlpha" if channels == 1 else "OfxImageComponentRGBA"],
                        OfxImagePropPixelAspectRatio=[1.0],
                        OfxImageEffectPropRenderScale=[1.0, 1.0],
                        OfxImagePropField=["OfxImageFieldNone"])
        return Image(props=props, buffer=buffer, time=time)

    @staticmethod
    def image_pixels(image: Image) -> np.ndarray:
        x1, y1, x2, y2 = image.props["OfxImagePropBounds"]
        width, height = x2 - x1, y2 - y1
        row_bytes = image.props["OfxImagePropRowBytes"][0]
        stride = abs(row_bytes)
        rows = image.buffer.reshape(height, stride)[:, : width * 16]
        pixels = rows.copy().view(np.float32).reshape(height, width, 4)
        return pixels[::-1].copy() if row_bytes < 0 else pixels

    # -- parameter suite --------------------------------------------------------------------

    def _param_define(self, param_set, kind, name, out) -> int:
        kind_s, name_s = kind.decode(), name.decode()
        if kind_s not in PARAM_KINDS:
            return ERR_UNSUPPORTED
        if name_s in self.context_params:
            return 6  # kOfxStatErrExists
        param = Param(name=name_s, kind=kind_s, props=PropSet(OfxPropName=[name_s]))
        self.context_params[name_s] = param
        if out:
            C.cast(out, C.POINTER(P))[0] = self.register(param.props)
        return OK

    def _param_get_handle(self, param_set, name, out, out_props) -> int:
        inst = self._instance(param_set)
        if inst is None or name.decode() not in inst.params:
            return ERR_UNKNOWN
        handle = inst.params[name.decode()]
        C.cast(out, C.POINTER(P))[0] = handle
        if out_props:
            C.cast(out_props, C.POINTER(P))[0] = self.register(self.objects[handle].props)
        return OK

    def _param_props(self, param, out) -> int:
        obj = self.objects.get(param or 0)
        if not isinstance(obj, Param):
            return ERR_BAD_HANDLE
        C.cast(out, C.POINTER(P))[0] = self.register(obj.props)
        return OK

    def _param_kind(self, param) -> int:
        obj = self.objects.get(param or 0)
        if not isinstance(obj, Param):
            return -1
        kind, count = PARAM_KINDS[obj.kind]
        return kind * 16 + count

    def _param_get(self, param, _time, outs, count) -> int:
        obj = self.objects[param]
        kind, _ = PARAM_KINDS[obj.kind]
        if kind == 0:
            C.cast(outs[0], C.POINTER(C.c_int))[0] = int(obj.value)
        elif kind == 1:
            C.cast(outs[0], C.POINTER(C.c_double))[0] = float(obj.value)
        elif kind == 2:
            buf = C.create_string_buffer(str(obj.value).encode())
            self._strings[(param, "value", 0)] = buf
            C.cast(outs[0], C.POINTER(P))[0] = C.addressof(buf)
        else:
            return ERR_UNSUPPORTED
        return OK

    def _param_set(self, param, values) -> int:
        obj = self.objects.get(param or 0)
        if not isinstance(obj, Param):
            return ERR_BAD_HANDLE
        obj.value = values[0]
        return OK

    # -- memory, message, progress ------------------------------------------------------------

    def _memory_alloc(self, _handle, size, out) -> int:
        buf = C.create_string_buffer(size)
        self.memory[C.addressof(buf)] = buf
        C.cast(out, C.POINTER(P))[0] = C.addressof(buf)
        return OK

    def _memory_free(self, ptr) -> int:
        return OK if self.memory.pop(ptr or 0, None) is not None else ERR_BAD_HANDLE

    def _message(self, _handle, kind, ident, text) -> int:
        self.messages.append((kind.decode(), (ident or b"").decode(), text.decode()))
        self.timeline.append(f"message:{kind.decode()}")
        return OK

    def _progress_impl(self, name: str, version: int):
        if name == "progressStart":
            def start(effect, message, ident=None):
                self.progress.starts.append(message.decode())
                self.timeline.append("progressStart")
                return OK
            if version == 2:
                return start
            return lambda effect, label: start(effect, label)
        if name == "progressUpdate":
            def update(effect, fraction):
                self.progress.updates.append(fraction)
                return REPLY_NO if self.progress.cancel_when(fraction) else OK
            return update

        def end(effect):
            self.progress.ends += 1
            self.timeline.append("progressEnd")
            return OK
        return end

    # -- actions ------------------------------------------------------------------------------

    def call(self, action: str, target: Instance | int | None, in_args: int | None,
             out_args: int | None = None) -> int:
        handle = target.handle if isinstance(target, Instance) else (target or 0)
        if isinstance(target, Instance):
            target.action = action
        start, callbacks = time.perf_counter(), self.callback_s
        try:
            return self.plugin.mainEntry(action.encode(), handle or None, in_args or None,
                                         out_args or None)
        finally:
            # Wall time of the action minus the host's own callbacks: the plugin's cost.
            self.last_plugin_s = time.perf_counter() - start - (self.callback_s - callbacks)
            if isinstance(target, Instance):
                target.action = ""
            if self.open_images:
                self.violations.append(f"{action} returned holding {len(self.open_images)} "
                                       "image(s)")
                self.open_images.clear()

    def load(self) -> int:
        return self.call("OfxActionLoad", None, None)

    def describe(self) -> int:
        self.descriptor = PropSet()
        self.descriptor_handle = self.register(("descriptor",))
        self._descriptor_props_handle = self.register(self.descriptor)
        return self.call("OfxActionDescribe", self.descriptor_handle, None)

    def describe_in_context(self, context: str) -> int:
        args = self.new_props(OfxImageEffectPropContext=[context])
        return self.call("OfxImageEffectActionDescribeInContext", self.descriptor_handle, args)

    def create_instance(self, context: str, frames: dict[int, np.ndarray], fps: float = 24.0,
                        source_path: str | None = None,
                        inputs: dict[str, dict[int, np.ndarray]] | None = None) -> Instance:
        props = PropSet(OfxImageEffectPropContext=[context], OfxPropIsInteractive=[1],
                        OfxImageEffectInstancePropSequentialRender=[0])
        if source_path is not None:
            props["OfxImageEffectPropSrcFilePath"] = [source_path]
        inst = Instance(host=self, handle=0, props=props, clips={}, params={}, frames=frames,
                        inputs=dict(inputs or {}))
        inst.handle = self.register(inst)
        inst.props_handle = self.register(props)
        first, last = min(frames), max(frames)
        height, width = frames[first].shape[:2]
        for name in self.context_clips:
            clip_props = self.register(PropSet(
                OfxPropName=[name], OfxImageEffectPropFrameRate=[fps],
                OfxImageEffectPropFrameRange=[float(first), float(last)],
                OfxImageClipPropConnected=[1], OfxImageEffectPropPixelDepth=["OfxBitDepthFloat"],
                OfxImageEffectPropComponents=["OfxImageComponentRGBA"],
                OfxImagePropRegionOfDefinition=[0, 0, width, height]))
            inst.clips[name] = self.register((inst, clip_props, name))
        for name, desc in self.context_params.items():
            default = desc.props.get("OfxParamPropDefault", [None])[0]
            if default is None:
                default = "" if desc.kind == "OfxParamTypeString" else 0
            param = Param(name=name, kind=desc.kind, props=PropSet(desc.props), value=default)
            inst.params[name] = self.register(param)
        status = self.call("OfxActionCreateInstance", inst, None)
        if status != OK:
            raise RuntimeError(f"CreateInstance returned {status}")
        return inst

    def unload(self) -> int:
        return self.call("OfxActionUnload", None, None)
