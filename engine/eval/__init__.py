"""The evaluation suite: the metrics that judge a dub (`edidub eval`).

- `identity`: ID-P / ID-TC of EdiDub §4.1 (softmax-weighted cosine distances of identity
  embeddings), dlib or ONNX embedders.
- `sync`: weights-free lip sync (mouth opening vs the truth's opening, vs the speech envelope).
- `syncnet`: SyncNet (Chung & Zisserman 2016) and LSE-D / LSE-C from local weights.
- `integrity`: outside-mask changes, occlusion preservation, seam continuity.
- `stats`: softmax-weighted means, PSNR, SSIM, lagged correlation.
- `clip`, `truth`: reading frame folders and the synthetic kit's truth.
- `report`: `evaluate_dub(...)`, the one JSON object `edidub eval` prints; `sheet`: contact sheet.
"""
