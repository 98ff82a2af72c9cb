"""Face tracking: detectors and landmark back-ends by name, tracks, aligned crops, masks."""
