"""Worker commands: `python -m app.worker run | health | dead-letters ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from app.logging import configure_logging
from app.settings import Settings, load_settings
from app.worker import dead_letters
from app.worker.broker import create_broker
from app.worker.middleware.heartbeat import is_fresh


def run(settings: Settings) -> int:
    """Run worker processes; SIGTERM lets running tasks finish (or requeues
    them) within WORKER_SHUTDOWN_TIMEOUT."""
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    worker = settings.worker
    os.environ.setdefault("dramatiq_prom_port", str(worker.metrics_port))
    arguments = [
        "--processes", str(worker.processes),
        "--threads", str(worker.threads),
        "--worker-shutdown-timeout", str(int(worker.shutdown_timeout * 1000)),
        "--skip-logging",
        "app.worker.entry:broker",
    ]  # fmt: skip
    parsed = make_argument_parser().parse_args(arguments)  # type: ignore[no-untyped-call]
    code = dramatiq_main(parsed)  # type: ignore[no-untyped-call]
    return int(code or 0)


def health(settings: Settings) -> int:
    """Exit 0 while the worker's heartbeat is fresh (a liveness probe)."""
    fresh = is_fresh(settings.worker.health_file, settings.worker.heartbeat_interval)
    print("ok" if fresh else "stale: no recent heartbeat")
    return 0 if fresh else 1


def dead(settings: Settings, action: str, queue: str | None) -> int:
    broker = create_broker(settings.worker)
    name = queue or settings.worker.queue
    try:
        if action == "list":
            letters = dead_letters.list_dead(broker, name)
            for letter in letters:
                print(
                    f"{letter.message_id}  {letter.actor}  args={letter.args!r} "
                    f"kwargs={letter.kwargs!r}  failures={letter.failures}  "
                    f"error={letter.error or '-'}"
                )
            print(f"{len(letters)} dead-lettered message(s) in {name}")
        elif action == "requeue":
            print(f"requeued {dead_letters.requeue(broker, name)} message(s) to {name}")
        else:
            print(f"purged {dead_letters.purge(broker, name)} message(s) from {name}")
    finally:
        broker.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the worker processes")
    commands.add_parser("health", help="exit 0 while the worker is alive")
    dead_parser = commands.add_parser("dead-letters", help="inspect the DLQ")
    dead_parser.add_argument("action", choices=["list", "requeue", "purge"])
    dead_parser.add_argument("--queue", help="default: WORKER_QUEUE")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings)
    if args.command == "run":
        return run(settings)
    if args.command == "health":
        return health(settings)
    return dead(settings, args.action, args.queue)


if __name__ == "__main__":
    sys.exit(main())
