"""The soak benchmark's parts that are not about soaking apps: soak/ (`benchmarks/run`) builds on
them, and its smoke tests start it through smoke.

configs   the allocator config (config vars a user sets) and the named configs
stats     a figure over the rounds: median [min-max]
tables    terminal and Markdown tables, and a figure's cell
compile   the app compiled with this buildpack from the offline jemalloc fixtures
cli       the options, the recorded command line and the loop over the stacks
smoke     the benchmark as its smoke tests run it
errors    the error that stops a stack's run
"""
