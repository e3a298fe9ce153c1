"""The synthetic burst benchmark: what preloading jemalloc buys a threaded job worker, through the
real shim. `benchmarks/run-synthetic` runs it (`python -m synthetic`).

For each stack it compiles benchmarks/app (with the workloads of benchmarks/workloads) with this
buildpack, exactly as the tests do, then boots one worker dyno per measurement in the stack's run
image, with the config vars of each allocator config, and collects the JSON line the workload
prints. Configs are interleaved round-robin so that the machine's noise spreads over all of
them, and each figure is reported as the median of the repetitions with its spread, and as a
ratio to glibc malloc measured in the same rounds.

configs   the allocator configs, sizes and workload languages
results   the typed results: a worker's run, the build figures, a config's summary, a stack's result
builds    the compiles and what they cost (time, slug bytes)
measure   the benchmark image and the worker dynos, round by round
stats     the summary of the runs: medians, spreads, ratios to glibc, workers per 512 MB
report    the terminal and Markdown tables
"""
