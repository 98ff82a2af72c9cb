"""DaVinci Resolve integration: dub the clip under the playhead and splice the result back.

- `adapter.ResolveAdapter`: the ONE place that calls Resolve's scripting API.
- `workflow`: `dub_clip` (= `prepare` -> `run_job` -> `place`), `find_clip`, `JobControl`.
- `clip`, `media`, `splice`: reading the clip, getting its frames (camera media or a graded
  render), placing the result transactionally.
- `ui.run_menu`: the Dub Clip dialog; `menu/`: the installed menu scripts (Python, Lua).
- `remote`: the hand-off that lets an external process drive Resolve through an in-app script.
- `connect`, `install`, `settings`, `commands` (`edidub resolve dub|install`).
See docs/RESOLVE.md.
"""
