from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_CREATED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class AudioKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_KIND_UNSPECIFIED: _ClassVar[AudioKind]
    AUDIO_KIND_NEW: _ClassVar[AudioKind]
    AUDIO_KIND_ORIGINAL: _ClassVar[AudioKind]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_CREATED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_DONE: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
AUDIO_KIND_UNSPECIFIED: AudioKind
AUDIO_KIND_NEW: AudioKind
AUDIO_KIND_ORIGINAL: AudioKind

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_frame_pixels", "max_frames", "max_spool_bytes", "max_message_bytes", "chunk_bytes")
    MAX_FRAME_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_SPOOL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_frame_pixels: int
    max_frames: int
    max_spool_bytes: int
    max_message_bytes: int
    chunk_bytes: int
    def __init__(self, max_frame_pixels: _Optional[int] = ..., max_frames: _Optional[int] = ..., max_spool_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "api_version", "device", "model", "presets", "engine_info_json", "limits", "queue_depth", "running", "token_required", "frames_by_reference")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_BY_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    device: str
    model: str
    presets: _containers.RepeatedScalarFieldContainer[str]
    engine_info_json: str
    limits: Limits
    queue_depth: int
    running: int
    token_required: bool
    frames_by_reference: bool
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., device: _Optional[str] = ..., model: _Optional[str] = ..., presets: _Optional[_Iterable[str]] = ..., engine_info_json: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., queue_depth: _Optional[int] = ..., running: _Optional[int] = ..., token_required: _Optional[bool] = ..., frames_by_reference: _Optional[bool] = ...) -> None: ...

class Rational(_message.Message):
    __slots__ = ("num", "den")
    NUM_FIELD_NUMBER: _ClassVar[int]
    DEN_FIELD_NUMBER: _ClassVar[int]
    num: int
    den: int
    def __init__(self, num: _Optional[int] = ..., den: _Optional[int] = ...) -> None: ...

class FacePoint(_message.Message):
    __slots__ = ("x", "y", "frame")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    frame: int
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., frame: _Optional[int] = ...) -> None: ...

class FaceChoice(_message.Message):
    __slots__ = ("index", "point")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    index: int
    point: FacePoint
    def __init__(self, index: _Optional[int] = ..., point: _Optional[_Union[FacePoint, _Mapping]] = ...) -> None: ...

class ClipSpec(_message.Message):
    __slots__ = ("fps", "first_frame", "last_frame", "colorspace", "face", "preset", "steps", "guidance", "seed", "audio_offset", "holdout")
    FPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_FIELD_NUMBER: _ClassVar[int]
    COLORSPACE_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    fps: Rational
    first_frame: int
    last_frame: int
    colorspace: str
    face: FaceChoice
    preset: str
    steps: int
    guidance: float
    seed: int
    audio_offset: float
    holdout: str
    def __init__(self, fps: _Optional[_Union[Rational, _Mapping]] = ..., first_frame: _Optional[int] = ..., last_frame: _Optional[int] = ..., colorspace: _Optional[str] = ..., face: _Optional[_Union[FaceChoice, _Mapping]] = ..., preset: _Optional[str] = ..., steps: _Optional[int] = ..., guidance: _Optional[float] = ..., seed: _Optional[int] = ..., audio_offset: _Optional[float] = ..., holdout: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("spec", "idempotency_key")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    spec: ClipSpec
    idempotency_key: str
    def __init__(self, spec: _Optional[_Union[ClipSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "spec", "idempotency_key", "stage", "done", "total", "eta_s", "message", "warnings", "error", "frames_received", "frames_finished", "has_audio", "has_original_audio", "created_unix", "updated_unix", "report_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FINISHED_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    HAS_ORIGINAL_AUDIO_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    spec: ClipSpec
    idempotency_key: str
    stage: str
    done: int
    total: int
    eta_s: float
    message: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    error: str
    frames_received: int
    frames_finished: int
    has_audio: bool
    has_original_audio: bool
    created_unix: float
    updated_unix: float
    report_json: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[_Union[ClipSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., eta_s: _Optional[float] = ..., message: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., frames_received: _Optional[int] = ..., frames_finished: _Optional[int] = ..., has_audio: _Optional[bool] = ..., has_original_audio: _Optional[bool] = ..., created_unix: _Optional[float] = ..., updated_unix: _Optional[float] = ..., report_json: _Optional[str] = ...) -> None: ...

class FrameChunk(_message.Message):
    __slots__ = ("job_id", "frame", "offset", "data", "size", "extension", "sha256")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    frame: int
    offset: int
    data: bytes
    size: int
    extension: str
    sha256: str
    def __init__(self, job_id: _Optional[str] = ..., frame: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., size: _Optional[int] = ..., extension: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class PartialFrame(_message.Message):
    __slots__ = ("frame", "bytes_received")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    frame: int
    bytes_received: int
    def __init__(self, frame: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class UploadStatus(_message.Message):
    __slots__ = ("job_id", "complete", "partial")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    complete: _containers.RepeatedScalarFieldContainer[int]
    partial: _containers.RepeatedCompositeFieldContainer[PartialFrame]
    def __init__(self, job_id: _Optional[str] = ..., complete: _Optional[_Iterable[int]] = ..., partial: _Optional[_Iterable[_Union[PartialFrame, _Mapping]]] = ...) -> None: ...

class ReferenceFramesRequest(_message.Message):
    __slots__ = ("job_id", "paths")
    class PathsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    paths: _containers.ScalarMap[int, str]
    def __init__(self, job_id: _Optional[str] = ..., paths: _Optional[_Mapping[int, str]] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("job_id", "kind", "offset", "data", "size", "sha256", "extension")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: AudioKind
    offset: int
    data: bytes
    size: int
    sha256: str
    extension: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[AudioKind, str]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., extension: _Optional[str] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("kind", "sample_rate", "channels", "samples", "duration_s")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    kind: AudioKind
    sample_rate: int
    channels: int
    samples: int
    duration_s: float
    def __init__(self, kind: _Optional[_Union[AudioKind, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., samples: _Optional[int] = ..., duration_s: _Optional[float] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "state", "stage", "done", "total", "eta_s", "message", "warnings", "error", "report_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    stage: str
    done: int
    total: int
    eta_s: float
    message: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    error: str
    report_json: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., eta_s: _Optional[float] = ..., message: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., report_json: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("job_id", "frames")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    frames: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, job_id: _Optional[str] = ..., frames: _Optional[_Iterable[int]] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("frame", "offset", "data", "size", "sha256", "extension", "passthrough")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_FIELD_NUMBER: _ClassVar[int]
    frame: int
    offset: int
    data: bytes
    size: int
    sha256: str
    extension: str
    passthrough: bool
    def __init__(self, frame: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., extension: _Optional[str] = ..., passthrough: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ("job_id", "deleted")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    deleted: bool
    def __init__(self, job_id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...
