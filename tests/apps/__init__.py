"""Small importable ASGI apps for end-to-end and subprocess tests."""
