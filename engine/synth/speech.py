"""Speech with exact phoneme timing from espeak-ng (DESIGN §7: what ships offline).

espeak-ng's library (located by `espeakng-loader`) is driven through ctypes in synchronous
mode with phoneme events: every callback hands back a block of 22050 Hz samples and the events
that fell inside it, each phoneme with its start in milliseconds on the audio timeline. That
timeline is the ground truth the viseme track (`engine.synth.visemes`) is built from, so the
synthetic clips know exactly when each sound is made. Structures mirror espeak-ng's
`speak_lib.h` (`espeak_EVENT`, `t_espeak_callback`).

The library keeps global state (voice, rate, callback), so calls are serialised by a lock;
synthesis is deterministic for a given text, voice, rate, pitch and range (espeak-ng's own
random jitter is re-seeded before every call).
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import threading
from dataclasses import dataclass, field
from functools import cache

import numpy as np

SAMPLE_RATE = 22050
RAND_SEED = 1

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_EVENT_MSG_TERMINATED = 6
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000

# Voices shipped in espeak-ng-data: a language voice optionally with a "+variant".
VOICES = (
    "en-us", "en", "en-us+f3", "en+m3", "en-us+m7", "en-gb-scotland", "en+f2", "en-us-nyc+f5",
    "en-029", "en-gb-x-rp+m2",
)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class SpeechError(RuntimeError):
    """espeak-ng could not be loaded or refused the request."""


@dataclass(frozen=True)
class VoiceSettings:
    """How a line is spoken: espeak-ng voice name, rate (words/min), pitch and range (0-100)."""

    voice: str = "en-us"
    rate: int = 160
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0  # extra pause between words, in units of 10 ms

    def __post_init__(self) -> None:
        if not 80 <= self.rate <= 450:
            raise ValueError(f"rate {self.rate} is outside espeak-ng's 80-450 words/min")
        for name in ("pitch", "pitch_range"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} {value} is outside 0-100")


@dataclass
class Speech:
    """A spoken line: mono float32 audio at 22050 Hz and its phoneme timeline.

    `phonemes` is a list of (start_seconds, ipa_symbol); a phoneme lasts until the next one
    starts, the last one until `duration`. Pauses are the symbol "_" (espeak's pause phoneme
    and any gap given to `with_pauses`).
    """

    audio: np.ndarray
    phonemes: list[tuple[float, str]] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE
    text: str = ""
    settings: VoiceSettings = field(default_factory=VoiceSettings)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


_lock = threading.Lock()


@cache
def _library() -> ctypes.CDLL:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - dependency of the engine extra
        raise SpeechError(
            "espeak-ng is missing: pip install espeakng-loader==0.2.4 (the engine extra)"
        ) from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    data = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
    )
    if rate != SAMPLE_RATE:
        raise SpeechError(f"espeak-ng initialised at {rate} Hz, expected {SAMPLE_RATE}")
    return lib


def synthesize(text: str, settings: VoiceSettings | None = None) -> Speech:
    """Speak `text` with espeak-ng; returns the audio and its phoneme timeline.

    espeak-ng keeps synthesis state between calls that neither re-initialising nor its
    random seed resets (the same request gives slightly different samples the second time in
    a process). Each request therefore runs in a forked child whose library is fresh, so the
    same request always gives the same samples: the kit's determinism rests on this.
    """
    settings = settings or VoiceSettings()
    if not text.strip():
        raise ValueError("cannot synthesize an empty line of text")
    if not hasattr(os, "fork"):  # pragma: no cover - Linux is the engine's platform
        audio, events, err = _synthesize_here(text, settings)
    else:
        audio, events, err = _synthesize_forked(text, settings)
    if err != 0:
        raise SpeechError(f"espeak_Synth failed with error {err} for {text!r}")
    audio = audio.astype(np.float32) / 32768.0
    phonemes = _clean_events(events, len(audio) / SAMPLE_RATE)
    return Speech(audio=audio, phonemes=phonemes, text=text, settings=settings)


def _synthesize_forked(text: str, settings: VoiceSettings
                       ) -> tuple[np.ndarray, list[tuple[int, str]], int]:
    read_fd, write_fd = os.pipe()
    with _lock:
        pid = os.fork()
        if pid == 0:  # child: synthesise with a fresh library, send, exit
            code = 0
            try:
                os.close(read_fd)
                audio, events, err = _synthesize_here(text, settings)
                head = json.dumps({"events": events, "err": err, "n": len(audio)}).encode()
                payload = struct.pack("<Q", len(head)) + head + audio.astype("<i2").tobytes()
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(payload)
            except BaseException as exc:  # report any failure to the parent
                try:
                    msg = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
                    with os.fdopen(write_fd, "wb") as pipe:
                        pipe.write(struct.pack("<Q", len(msg)) + msg)
                finally:
                    code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
    if len(data) < 8:
        raise SpeechError("the espeak-ng worker process died without an answer")
    (n_head,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8 : 8 + n_head])
    if "error" in head:
        if "no voice" in head["error"]:
            raise SpeechError(head["error"].split(": ", 1)[-1])
        raise SpeechError(f"espeak-ng failed: {head['error']}")
    audio = np.frombuffer(data[8 + n_head :], dtype="<i2").astype(np.int16)
    return audio, [(int(t), str(p)) for t, p in head["events"]], int(head["err"])


def _synthesize_here(text: str, settings: VoiceSettings
                     ) -> tuple[np.ndarray, list[tuple[int, str]], int]:
    lib = _library()
    chunks: list[np.ndarray] = []
    events: list[tuple[int, str]] = []

    def on_audio(wav, numsamples, event_ptr) -> int:
        if numsamples > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while event_ptr[i].type != _EVENT_LIST_TERMINATED:
            ev = event_ptr[i]
            if ev.type == _EVENT_PHONEME:
                events.append((ev.audio_position, ev.id.string.decode("utf-8", "replace")))
            if ev.type == _EVENT_MSG_TERMINATED:
                break
            i += 1
        return 0

    callback = _CALLBACK(on_audio)
    encoded = text.encode("utf-8") + b"\0"
    # no lock here: the caller holds it (a forked child inherits it held)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(settings.voice.encode()) != 0:
        raise SpeechError(f"espeak-ng has no voice {settings.voice!r}; try one of {VOICES}")
    lib.espeak_SetParameter(_RATE, settings.rate, 0)
    lib.espeak_SetParameter(_PITCH, settings.pitch, 0)
    lib.espeak_SetParameter(_RANGE, settings.pitch_range, 0)
    lib.espeak_SetParameter(_WORDGAP, settings.word_gap, 0)
    lib.espeak_SetParameter(_VOLUME, 100, 0)
    # espeak-ng adds random jitter to voicing; a fixed seed per call makes the same
    # request give the same samples, whatever was synthesised before in this process.
    lib.espeak_ng_SetRandSeed(RAND_SEED)
    err = lib.espeak_Synth(
        encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
    )
    lib.espeak_Synchronize()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return audio, events, int(err)


def _clean_events(events: list[tuple[int, str]], duration: float) -> list[tuple[float, str]]:
    """Phoneme events -> sorted (seconds, symbol), pauses named "_", duplicates dropped."""
    out: list[tuple[float, str]] = []
    for ms, name in sorted(events, key=lambda e: e[0]):
        t = min(ms / 1000.0, duration)
        symbol = name.strip() or "_"
        if symbol.startswith("_"):
            symbol = "_"
        if out and abs(out[-1][0] - t) < 1e-9:
            out[-1] = (t, symbol)  # zero-length phonemes: the later event wins
            continue
        out.append((t, symbol))
    if not out or out[0][0] > 0:
        out.insert(0, (0.0, "_"))
    return out


def concatenate(parts: list[Speech], pauses: list[float]) -> Speech:
    """Join spoken phrases with silent pauses between them (len(pauses) == len(parts) - 1).

    Gives lines with real silences inside them, where the mouth must close and stay still.
    """
    if len(pauses) != len(parts) - 1:
        raise ValueError("need one pause between each pair of phrases")
    audio: list[np.ndarray] = []
    phonemes: list[tuple[float, str]] = []
    offset = 0.0
    for i, part in enumerate(parts):
        phonemes.extend((offset + t, p) for t, p in part.phonemes)
        audio.append(part.audio)
        offset += part.duration
        if i < len(pauses):
            gap = int(round(pauses[i] * SAMPLE_RATE))
            phonemes.append((offset, "_"))
            audio.append(np.zeros(gap, np.float32))
            offset += gap / SAMPLE_RATE
    merged: list[tuple[float, str]] = []
    for t, p in phonemes:
        if merged and merged[-1][1] == "_" and p == "_":
            continue
        merged.append((t, p))
    return Speech(
        audio=np.concatenate(audio), phonemes=merged, text=" / ".join(p.text for p in parts),
        settings=parts[0].settings,
    )
