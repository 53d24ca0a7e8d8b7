"""Jinja extensions for copier.yml, loaded by file path (copier-template-extensions)."""
