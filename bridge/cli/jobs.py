"""`edidub jobs list|show|cancel|delete`: look after a bridge server's jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(subparsers) -> None:
    from bridge.cli.dub import add_connection_args

    p = subparsers.add_parser("jobs", help="list, show, cancel or delete a server's jobs",
                              description=__doc__.splitlines()[0])
    add_connection_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="all jobs")
    for action in ("show", "cancel", "delete"):
        sp = sub.add_parser(action, help=f"{action} one job")
        sp.add_argument("job_id")
    p.set_defaults(func=run)


def _row(job: dict) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created_unix"]))
    spec = job["spec"]
    progress = f"{job['stage']} {job['done']}/{job['total']}" if job["stage"] else ""
    return (f"{job['job_id']}  {job['state']:<9}  {created}  "
            f"{spec['first_frame']}-{spec['last_frame']}@{spec['fps']}  {progress}")


def run(args: argparse.Namespace) -> int:
    from bridge.cli.dub import connect
    from bridge.client import BridgeError

    try:
        with connect(args) as client:
            if args.action == "list":
                jobs = client.list_jobs()
                if args.json:
                    print(json.dumps(jobs, indent=1))
                elif not jobs:
                    print("no jobs")
                else:
                    print("\n".join(_row(j) for j in jobs))
            elif args.action == "show":
                job = client.get_job(args.job_id)
                print(json.dumps(job, indent=1) if args.json else _show(job))
            elif args.action == "cancel":
                client.cancel(args.job_id)
                print(f"job {args.job_id}: {client.get_job(args.job_id)['state']}")
            elif args.action == "delete":
                client.delete(args.job_id)
                print(f"job {args.job_id}: deleted")
    except BridgeError as exc:
        print(f"edidub jobs: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _show(job: dict) -> str:
    lines = [_row(job)]
    for key in ("message", "error"):
        if job[key]:
            lines.append(f"  {key}: {job[key]}")
    lines.append(f"  inputs: {job['frames_received']} frames, audio "
                 f"{'yes' if job['has_audio'] else 'no'}; results: {job['frames_finished']}")
    lines.extend(f"  warning: {w}" for w in job["warnings"])
    if job["report"]:
        lines.append(f"  report: {json.dumps(job['report'])}")
    return "\n".join(lines)
