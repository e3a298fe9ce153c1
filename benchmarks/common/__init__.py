"""What the two benchmarks share: the soak benchmark (soak/, `benchmarks/run`) and the synthetic
burst benchmark (synthetic/, `benchmarks/run-synthetic`).

configs   the allocator config (config vars a user sets) and the names both benchmarks know
stats     a figure over the rounds: median [min-max]
tables    terminal and Markdown tables, and a figure's cell
compile   the app compiled with this buildpack from the offline jemalloc fixtures
cli       the options, the recorded command line and the loop over the stacks
"""
