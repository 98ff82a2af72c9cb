"""Transport and jobs: gRPC server and client, job spool, frame streaming, the `edidub` CLI.

Knows the engine only through `engine.job` (the clip-job interface) and `engine.frames`
(the one image codec); never imports torch.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("edidub-bridge")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
