"""A local exchange that speaks Upbit's and Binance's REST dialects, generated from the seeded model.

Tests can never reach a real venue, so the production ccxt path runs against this simulator
instead: the same requests, the same response shapes, the same error bodies, signed orders
checked like the venues check them. It can misbehave on purpose and is re-configured while it
runs through a small control API. It is test infrastructure, outside the engine: `arbitrage sim`
(`command`) starts it through the CLI's composition point, and tests drive it through `client`.

Rooms: `server` (HTTP, 127.0.0.1 only) -> `exchange` (model, fault state, routing) -> `public`
(listings and books), `private` (signed requests: `auth`, `orders`, `account`), `control` (the
control API), `order_faults`; `dialects` builds the venues' bodies.
"""
