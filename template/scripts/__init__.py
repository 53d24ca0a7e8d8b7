"""The project's own commands (not part of the app or its image)."""
