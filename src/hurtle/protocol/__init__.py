"""Sans-IO protocol cores: bytes in, events out; events in, bytes out.

Nothing in this package may import asyncio, socket, ssl, time or logging
(checked by ``tests/protocol/test_no_io.py``).
"""
