"""Tests of the publications example (delete them with it)."""
