"""Translation between wire messages (proto edidub.bridge.v1) and the job interface's types.

The one place that knows both: the server and the client both translate through here.
"""

from __future__ import annotations

import json
from fractions import Fraction

from bridge._proto import bridge_pb2 as pb
from bridge.spool import JobStatus, json_text
from engine.job import DEFAULT_COLORSPACE, DubSpec, FaceChoice

API_VERSION = "edidub.bridge.v1"

STATE_TO_WIRE = {
    "created": pb.JOB_STATE_CREATED,
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "done": pb.JOB_STATE_DONE,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
}
STATE_FROM_WIRE = {v: k for k, v in STATE_TO_WIRE.items()}
AUDIO_TO_WIRE = {"new": pb.AUDIO_KIND_NEW, "original": pb.AUDIO_KIND_ORIGINAL}
AUDIO_FROM_WIRE = {v: k for k, v in AUDIO_TO_WIRE.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def with_bytes_field(head: bytes, field_number: int, data: bytes | memoryview) -> bytes:
    """Serialised `head` plus a length-delimited bytes field, joined in one copy.

    Protobuf messages are a concatenation of fields, so this equals building the message with
    the field set and serialising it, without the two extra copies of the payload that the
    protobuf runtime makes (it accepts no memoryview). Used for the frame chunks, where the
    payload is nearly all of the traffic.
    """
    return b"".join((head, _varint(field_number << 3 | 2), _varint(len(data)), data))


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def split_bytes_field(raw: bytes, field_number: int, message_type):
    """Parse a serialised message, handing back one length-delimited field as a zero-copy
    memoryview and everything else parsed by protobuf: (message without that field, view).

    The counterpart of `with_bytes_field` for the receiving side of frame uploads.
    """
    buf = memoryview(raw)
    pos, found = 0, None
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        wire_type = key & 7
        if wire_type == 0:
            _, pos = _read_varint(buf, pos)
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            if key >> 3 == field_number:
                found = (start, pos, pos + length)
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    if pos != len(buf):
        raise ValueError("truncated message")
    if found is None:
        return message_type.FromString(raw), memoryview(b"")
    start, begin, end = found
    rest = bytes(buf[:start]) + bytes(buf[end:])
    return message_type.FromString(rest), buf[begin:end]


FRAME_CHUNK_DATA = pb.FrameChunk.DESCRIPTOR.fields_by_name["data"].number
RESULT_CHUNK_DATA = pb.ResultChunk.DESCRIPTOR.fields_by_name["data"].number


def spec_to_wire(spec: DubSpec) -> pb.ClipSpec:
    msg = pb.ClipSpec(
        fps=pb.Rational(num=spec.fps.numerator, den=spec.fps.denominator),
        first_frame=spec.first_frame,
        last_frame=spec.last_frame,
        colorspace=spec.colorspace,
        preset=spec.preset,
        seed=spec.seed,
        audio_offset=spec.audio_offset,
        holdout=spec.holdout,
    )
    if spec.steps is not None:
        msg.steps = spec.steps
    if spec.guidance is not None:
        msg.guidance = spec.guidance
    face = spec.face
    if face.point is not None:
        at = face.at_frame if face.at_frame is not None else spec.first_frame
        msg.face.point.CopyFrom(pb.FacePoint(x=face.point[0], y=face.point[1], frame=at))
    elif face.index is not None:
        msg.face.index = face.index
    return msg


def spec_from_wire(msg: pb.ClipSpec) -> DubSpec:
    """A DubSpec from the wire; raises ValueError naming a malformed field."""
    if msg.fps.den == 0 or msg.fps.num <= 0 or msg.fps.den < 0:
        raise ValueError(f"fps must be a positive rational, got {msg.fps.num}/{msg.fps.den}")
    choice = msg.face.WhichOneof("choice")
    if choice == "point":
        p = msg.face.point
        face = FaceChoice(point=(p.x, p.y), at_frame=p.frame)
    elif choice == "index":
        face = FaceChoice(index=msg.face.index)
    else:
        face = FaceChoice()
    return DubSpec(
        fps=Fraction(msg.fps.num, msg.fps.den),
        first_frame=msg.first_frame,
        last_frame=msg.last_frame,
        colorspace=msg.colorspace or DEFAULT_COLORSPACE,
        face=face,
        preset=msg.preset or "final",
        steps=msg.steps if msg.HasField("steps") else None,
        guidance=msg.guidance if msg.HasField("guidance") else None,
        seed=msg.seed,
        audio_offset=msg.audio_offset,
        holdout=msg.holdout,
    )


def job_to_wire(status: JobStatus, frames_received: int, frames_finished: int,
                has_audio: bool, has_original_audio: bool) -> pb.Job:
    return pb.Job(
        job_id=status.job_id,
        state=STATE_TO_WIRE[status.state],
        spec=spec_to_wire(status.spec),
        idempotency_key=status.idempotency_key or "",
        stage=status.stage,
        done=status.done,
        total=status.total,
        eta_s=status.eta_s,
        message=status.message,
        warnings=status.warnings,
        error=status.error,
        frames_received=frames_received,
        frames_finished=frames_finished,
        has_audio=has_audio,
        has_original_audio=has_original_audio,
        created_unix=status.created,
        updated_unix=status.updated,
        report_json=json_text(status.report) if status.report is not None else "",
    )


def event_to_wire(status: JobStatus) -> pb.JobEvent:
    return pb.JobEvent(
        job_id=status.job_id,
        state=STATE_TO_WIRE[status.state],
        stage=status.stage,
        done=status.done,
        total=status.total,
        eta_s=status.eta_s,
        message=status.message,
        warnings=status.warnings,
        error=status.error,
        report_json=json_text(status.report) if status.report is not None else "",
    )


def report_from_json(text: str) -> dict | None:
    """The engine's JobReport as a dict, pass-through frames keyed by int as in JobReport."""
    if not text:
        return None
    report = json.loads(text)
    if isinstance(report.get("passthrough"), dict):
        report["passthrough"] = {int(k): v for k, v in report["passthrough"].items()}
    return report


def job_from_wire(msg: pb.Job) -> dict:
    """A job as the plain dict the client API returns."""
    spec = spec_from_wire(msg.spec)
    return {
        "job_id": msg.job_id,
        "state": STATE_FROM_WIRE.get(msg.state, "unknown"),
        "spec": {
            "fps": f"{spec.fps.numerator}/{spec.fps.denominator}",
            "first_frame": spec.first_frame,
            "last_frame": spec.last_frame,
            "colorspace": spec.colorspace,
            "preset": spec.preset,
            "steps": spec.steps,
            "guidance": spec.guidance,
            "seed": spec.seed,
            "audio_offset": spec.audio_offset,
            "holdout": spec.holdout,
            "face": {"index": spec.face.index, "point": spec.face.point,
                     "at_frame": spec.face.at_frame},
        },
        "idempotency_key": msg.idempotency_key or None,
        "stage": msg.stage,
        "done": msg.done,
        "total": msg.total,
        "eta_s": msg.eta_s if msg.eta_s >= 0 else None,
        "message": msg.message,
        "warnings": list(msg.warnings),
        "error": msg.error,
        "frames_received": msg.frames_received,
        "frames_finished": msg.frames_finished,
        "has_audio": msg.has_audio,
        "has_original_audio": msg.has_original_audio,
        "created_unix": msg.created_unix,
        "updated_unix": msg.updated_unix,
        "report": report_from_json(msg.report_json),
    }
