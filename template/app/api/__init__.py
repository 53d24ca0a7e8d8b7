"""The public API, one module per version: `/api/v1` is `v1.py`. A breaking
change gets a `v2.py` beside it, and both are served until v1 is retired."""
