"""The service's import package (fixed name, whatever the distribution is called)."""
