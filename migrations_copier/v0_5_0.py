"""Migration to v0.5.0.

v0.5.0 adds the `auth` question, whose default for new services is `jwt`
(write routes need a bearer token). A service made before v0.5.0 keeps its
API open as it was: the migration answers `auth: none` (before stage), which
only sets the default of `AUTH_MODE`. Owners turn authentication on with
`copier update --data auth=jwt` (or oidc), or with `AUTH_MODE` in their
deployment. The `feature_flags` question is recorded as `none`, its default.
Nothing is renamed or moved: the after stage has nothing to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

CHANGES = Changes(
    version="0.5.0", added_answers={"auth": "none", "feature_flags": "none"}
)

if __name__ == "__main__":
    sys.exit(main(CHANGES))
