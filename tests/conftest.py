"""Shared fixtures live in tests/plugins/, one module per area, registered here."""

pytest_plugins: list[str] = [
    "tests.plugins.broker",
    "tests.plugins.isnet",
    "tests.plugins.tiny_models",
    "tests.plugins.pipeline",
]
