"""The error a benchmark stops a stack's run with."""


class BenchmarkError(RuntimeError):
    pass
