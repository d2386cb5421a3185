"""The ASGI bridge shared by every protocol: scopes, the HTTP cycle, lifespan."""
