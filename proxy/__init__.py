"""The OpenAI-compatible aiohttp proxy: handlers, upstream adapters, routing and shadowing."""
