"""The synthetic talking-face kit: data with exact ground truth (DESIGN §7, EdiDub §3).

No face-video dataset or pretrained dubbing weights can be downloaded here, so the project
makes its own: real photos that packages ship (`identities`), animated by a landmark rig
(`face_model`) and a fast piecewise-affine warp (`warp`), speaking lines synthesised by
espeak-ng with exact phoneme timing (`speech`), turned into viseme tracks with
coarticulation (`visemes`), with seeded head motion, light drift, blinks and occluders
(`tracks`). `clip.make_clip` writes clips and their ground-truth dub pairs for
`edidub synth make`; `training.render_training_clip` renders aligned training crops directly.

Honest held-out split: two of the eight identities (`identities.HELD_OUT`) are never used for
training. Every augmentation (colour, crop scale and position, horizontal flip, occluders,
voices) is applied within one identity's own photo; morphs (`a~b@40`, new faces for
training) blend two seen identities only and refuse a held-out one; and the training entry points
(`training.render_training_clip`, `training.training_plan`) refuse held-out identities, so no
pixel of a held-out face ever reaches a training batch, augmented or not. The benchmark's
sentences (`bench/synth-v1/manifest.json`) are likewise excluded from the training sentences
(`sentences.training_sentences`).
"""

from engine.synth.identities import HELD_OUT, IDENTITIES, SEEN

__all__ = ["HELD_OUT", "IDENTITIES", "SEEN"]
