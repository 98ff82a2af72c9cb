"""The two ways a Resolve action ends early, each with a message meant for the colorist."""

from __future__ import annotations


class ResolveScriptError(RuntimeError):
    """Something went wrong while talking to Resolve or the bridge; the timeline was restored."""


class Refused(ResolveScriptError):
    """The selection or timeline cannot be dubbed as it is; nothing was changed."""


class JobCancelled(ResolveScriptError):
    """The user cancelled the job; the server-side job was cancelled and nothing was placed."""
