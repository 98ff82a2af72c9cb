"""Face tracking: detectors and landmark back-ends by name, tracks, aligned crops, masks.

- `detect`: `detect_faces(image, backend)` -> `FaceDet`s left to right; back-ends `dlib`
  (default, offline) and `insightface` (`insight`, a model pack on disk).
- `landmarks`: the 68-point index groups, `mouth_opening`, `mouth_width`.
- `track`: `track_faces(detections, FaceChoice)` -> `FaceTrack` (bridged, smoothed), `jitter`.
- `align`: `crop_geometry` (stabilised similarity transforms), `lower_face_masks`,
  `warp_crops` (kornia), `invert_affine`/`apply_affine` for paste-back.
- `references`: `select_references(landmarks, k)` for training (EdiDub §3.1).
- `dlib_models`: where dlib's shipped model files are.
"""
