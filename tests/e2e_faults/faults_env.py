"""Settings shared by the fault suite's fixtures and tests (a module of its own: `conftest`
is an ambiguous name when several e2e folders are collected together)."""

BEHAVIOURS = ("ok", "ok-stream", "long-stream", "http-500", "http-429", "malformed", "truncated",
              "slow-first-byte", "hang", "never-close", "trickle", "trickle-forever", "cut-stream",
              "no-done", "huge")
DEADLINE = 4.0          # GATEWAY_REQUEST_DEADLINE of the gateway under test
READ_TIMEOUT = 1.0      # the fault provider's read timeout
MAX_UPSTREAM = 2_000_000
