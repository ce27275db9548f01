"""The fallbackproject Django project: wiring only, no business logic."""
