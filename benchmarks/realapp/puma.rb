# puma in cluster mode as Heroku recommends it: forked workers of a preloaded app, threads in each.
workers Integer(ENV.fetch("WEB_CONCURRENCY", 2))
threads_count = Integer(ENV.fetch("RAILS_MAX_THREADS", 5))
threads threads_count, threads_count
preload_app!
port Integer(ENV.fetch("PORT", 5000))
environment "production"
quiet
