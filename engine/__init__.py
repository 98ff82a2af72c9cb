"""Everything about pixels and speech: the EdiDub method and the clip pipeline around it.

Sub-packages by stage: face/, speech/, models/, diffusion/, sr/, compose/, synth/, eval/,
train/; `pipeline.py` is the one place that orders the stages. `job.py` is the interface the
bridge uses and `frames.py` the one image codec; both import neither torch nor grpc. This
package never imports `bridge` or `grpc`.
"""
