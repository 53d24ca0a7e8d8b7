"""Migration to v0.3.0.

v0.3.0 adds the `broker` question (background tasks with Dramatiq), whose
default for new services is `redis`. A service made before v0.3.0 keeps
working as it was: the migration answers `broker: none` (before stage). Owners
switch the worker on with `copier update --data broker=redis` (or rabbitmq).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

CHANGES = Changes(version="0.3.0", added_answers={"broker": "none"})

if __name__ == "__main__":
    sys.exit(main(CHANGES))
