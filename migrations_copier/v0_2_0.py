"""Migration to v0.2.0.

- The question `database` is now `production_database`, and the license choice
  `proprietary` is now the SPDX expression `LicenseRef-Proprietary` (before).
- `app/api.py` moved to `app/api/v1.py` (after: the owner's edits come along).
- `SERVER_FORWARDED_ALLOW_IPS` is now `SERVER_TRUSTED_PROXIES` (after: renamed
  in .env files and deployment files; the old name still works in v0.2.x).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

CHANGES = Changes(
    version="0.2.0",
    renamed_questions={"database": "production_database"},
    changed_choices={"license": {"proprietary": "LicenseRef-Proprietary"}},
    moved_files={"app/api.py": "app/api/v1.py"},
    # Since v0.7.0 the API module is the owner's (a seam): it moves as the
    # owner left it, and v0.7.0's migration rewrites its router header.
    moved_as_is=("app/api/v1.py",),
    renamed_settings={"SERVER_FORWARDED_ALLOW_IPS": "SERVER_TRUSTED_PROXIES"},
)

if __name__ == "__main__":
    sys.exit(main(CHANGES))
