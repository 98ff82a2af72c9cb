"""The engine's `edidub` sub-commands (synth, prep, train, eval, model, codebook, demo).

Each module offers `register(subparsers)`; heavy imports stay inside the command functions.
"""
