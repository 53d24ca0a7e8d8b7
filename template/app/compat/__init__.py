"""Where the service relies on a dependency's private parts, one module per
library: nothing else in app/ touches them.

Each module says what it relies on, and tests/compat/ pins exactly that, so
a version bump that changes it fails there, naming the library and the part.
"""
