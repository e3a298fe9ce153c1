"""The soak benchmark: real worker apps (Sidekiq, puma in cluster mode, Celery) in dyno-sized
containers under minutes of steady load, per allocator config. `benchmarks/run` runs it.

configs   the allocator configs (config vars, built on common.configs)
          and the run sizes
results   the typed results: a dyno's run, a config's figures, the fork+exec cost, a stack's result
apps      the real apps: process types of benchmarks/realapp and how to load them
sampler   what each dyno uses, read from the host's /proc and the dyno's cgroup every second
analysis  the figures of one run and of all rounds (Heroku's view: R14, R15, workers per dyno)
report    tables, Markdown and the PNG chart
runner    images, compiles, and the rounds of dynos
forkexec  what the background thread restart costs fork+exec, and a child's work right after fork
"""
