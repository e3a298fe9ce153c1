# The Sidekiq app: `sidekiq -r ./sidekiq_jobs.rb` (Procfile). The feeder pushes ReportJob with
# [kind, size, seed]; each job counts itself in Redis so that the feeder knows when all are done.
require "sidekiq"
require_relative "work"

class ReportJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(kind, size, seed)
    Work.run(kind, size, seed)
    Sidekiq.redis { |redis| redis.incr("bench:done") }
  end
end
