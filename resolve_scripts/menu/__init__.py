"""Templates of the menu scripts `edidub resolve install` writes into Resolve's Scripts folder
(`dub_clip.py`, `dub_clip.lua`). They run inside Resolve, not as modules of this package:
never import them."""
