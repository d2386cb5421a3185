"""The asyncio layer: one `asyncio.Protocol` per connection, timers and flow control."""
