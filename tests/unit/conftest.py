"""The unit tier: the buildpack's pure bash functions, the runtime rules and the harness's
parsers, run on this machine with its own bash. No Docker, no root, no network: the whole tier
runs in seconds (`scripts/test --unit`), and `scripts/test` runs it before the stack tier."""
