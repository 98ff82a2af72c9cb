"""Transport and jobs: gRPC server and client, job spool, frame streaming, the `edidub` CLI.

Knows the engine only through `engine.job` (the clip-job interface) and `engine.frames`
(the one image codec); never imports torch.
"""
