"""Example ASGI applications to serve with hurtle (``hurtle examples.tasks:app``)."""
