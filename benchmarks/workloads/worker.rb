#!/usr/bin/env ruby
# frozen_string_literal: true

# A threaded job worker whose allocation pattern fragments glibc malloc (Sidekiq-style bloat).
#
# The Ruby twin of worker.py, with the same jobs: worker threads take jobs from a queue; each job
# builds many objects of widely mixed sizes (small strings, hashes, medium strings, buffers above
# glibc's mmap threshold), keeps a small bounded fraction in a long-lived cache shared by all
# threads, and drops the rest. Job N draws from its own generator, seeded with (seed, N),
# whichever thread runs it. A sampler thread reads VmRSS every --sample-ms.
#
# Prints one JSON line on stdout at the end. Stdlib only, and Ruby 2.5 or later: it runs on the
# ruby of every stack image, heroku-18's too.

require "json"
require "objspace"
require "optparse"

module Worker
  # Object kinds: [share of the objects a job builds, smallest, largest size in bytes].
  SMALL_STRING = [0.40, 16, 500].freeze
  HASH = [0.15, 4, 40].freeze # entries, not bytes
  MEDIUM_STRING = [0.35, 513, 8 * 1024].freeze
  LARGE_STRING = [0.09, 8 * 1024, 128 * 1024].freeze
  # Above glibc's initial mmap threshold (128 KiB); glibc raises the threshold as such buffers
  # are freed, after which they come from the arenas too.
  HUGE_BUFFER = [0.01, 128 * 1024, 1024 * 1024].freeze
  KINDS = [SMALL_STRING, HASH, MEDIUM_STRING, LARGE_STRING, HUGE_BUFFER].freeze
  LETTERS = ("a".."z").to_a.freeze

  module_function

  def read_status(field)
    line = File.foreach("/proc/self/status").find { |entry| entry.start_with?("#{field}:") }
    raise "no #{field} in /proc/self/status" unless line

    line.split[1].to_i * 1024
  end

  # The libjemalloc file mapped into this process, if any: proof of which allocator runs.
  def mapped_jemalloc
    File.foreach("/proc/self/maps") do |line|
      fields = line.split(" ", 6)
      return fields[5].strip if fields.length == 6 && fields[5].include?("libjemalloc")
    end
    nil
  end

  # The settings jemalloc runs with, as it reports them (mallctl), or nil without jemalloc.
  def jemalloc_options
    require "fiddle"
    mallctl = Fiddle::Function.new(Fiddle::Handle::DEFAULT["mallctl"], [Fiddle::TYPE_VOIDP] * 4 + [Fiddle::TYPE_SIZE_T],
                                   Fiddle::TYPE_INT)
    read = lambda do |name, size, format|
      value = Fiddle::Pointer.malloc(size)
      length = Fiddle::Pointer.malloc(Fiddle::SIZEOF_SIZE_T)
      length[0, Fiddle::SIZEOF_SIZE_T] = [size].pack("J")
      mallctl.call(name, value, length, nil, 0).zero? ? value[0, size].unpack1(format) : nil
    end
    background_thread = read.call("opt.background_thread", 1, "C")
    { narenas: read.call("opt.narenas", 4, "L"), background_thread: background_thread && background_thread == 1,
      dirty_decay_ms: read.call("opt.dirty_decay_ms", 8, "q") }
  rescue LoadError, Fiddle::DLError
    nil
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def cpu_time
    Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  end

  def choose_kind(rng)
    draw = rng.rand
    KINDS.each do |kind|
      return kind if draw < kind[0]

      draw -= kind[0]
    end
    KINDS.last
  end

  def build_object(rng, kind)
    size = rng.rand(kind[1]..kind[2])
    # Repetition writes every byte, so the pages are really touched, as a real payload's are.
    letter = LETTERS[size % 26]
    return (0...size).map { |index| ["field-#{index}", letter * (index + 8)] }.to_h if kind.equal?(HASH)

    letter * size
  end

  # Bytes an object of this workload holds, by the interpreter's own accounting.
  def deep_size(value)
    size = ObjectSpace.memsize_of(value)
    value.each { |key, item| size += ObjectSpace.memsize_of(key) + ObjectSpace.memsize_of(item) } if value.is_a?(Hash)
    size
  end

  def downsample(samples, points)
    step = [1, samples.length / points].max
    samples.each_slice(step).map { |slice| [slice.first[0].round(3), slice.first[1]] }
  end
end

# Samples VmRSS into [seconds since start, bytes] pairs until stopped.
class RssSampler
  attr_reader :samples, :started_at

  def initialize(interval)
    @interval = interval
    @started_at = Worker.monotonic
    @samples = []
    @stopping = false
  end

  def start
    @thread = Thread.new do
      until @stopping
        @samples << [Worker.monotonic - @started_at, Worker.read_status("VmRSS")]
        sleep @interval
      end
    end
  end

  def stop
    @stopping = true
    @thread.join
  end

  def between(first, last)
    @samples.select { |at, _| at >= first && at <= last }.map { |_, rss| rss }
  end
end

# Runs the jobs and holds the long-lived cache.
class JobRunner
  attr_reader :cache, :objects_built, :payload_length_sum

  def initialize(seed:, objects_per_job:, keep_per_mille:, cache_slots:, io_waits:, io_wait_ms:)
    @seed = seed
    @objects_between_waits = [1, objects_per_job / [io_waits, 1].max].max
    @io_wait = io_waits.positive? ? io_wait_ms / 1000.0 : 0.0
    @objects_per_job = objects_per_job
    @keep_per_mille = keep_per_mille
    # A fixed number of slots, each job overwriting a few at random: bounded, and its survivors
    # are spread over the whole run.
    @cache = Array.new(cache_slots)
    @objects_built = 0
    @payload_length_sum = 0
    @count_lock = Mutex.new
  end

  def run_job(job)
    rng = Random.new(@seed * 1_000_003 + job)
    objects = []
    lengths = 0
    @objects_per_job.times do |index|
      # The job's I/O (a query, a request): the thread waits and the GVL goes to another one.
      sleep(@io_wait) if @io_wait.positive? && (index % @objects_between_waits).zero?
      kind = Worker.choose_kind(rng)
      value = Worker.build_object(rng, kind)
      lengths += value.length
      objects << value
      # Huge buffers are request payloads: a cache keeps what is derived from them.
      @cache[rng.rand(@cache.length)] = value if !kind.equal?(Worker::HUGE_BUFFER) && rng.rand(1000) < @keep_per_mille
    end
    @count_lock.synchronize do
      @objects_built += objects.length
      @payload_length_sum += lengths
    end
    # The job ends: everything it did not cache is garbage from here on.
  end

  def cache_bytes
    @cache.compact.sum { |value| Worker.deep_size(value) }
  end
end

options = { threads: 10, jobs: 1000, seed: 1, objects_per_job: 400, keep_per_mille: 20, cache_slots: 2000,
            io_waits: 2, io_wait_ms: 1.0, idle: 3.0, sample_ms: 50.0, series_points: 200 }
OptionParser.new do |parser|
  parser.banner = "Usage: worker.rb [options]"
  parser.on("--threads N", Integer) { |value| options[:threads] = value }
  parser.on("--jobs N", Integer) { |value| options[:jobs] = value }
  parser.on("--seed N", Integer) { |value| options[:seed] = value }
  parser.on("--objects-per-job N", Integer) { |value| options[:objects_per_job] = value }
  parser.on("--keep-per-mille N", Integer, "objects per 1000 that go to the cache") { |value| options[:keep_per_mille] = value }
  parser.on("--cache-slots N", Integer) { |value| options[:cache_slots] = value }
  parser.on("--io-waits N", Integer, "waits for simulated I/O per job") { |value| options[:io_waits] = value }
  parser.on("--io-wait-ms MS", Float) { |value| options[:io_wait_ms] = value }
  parser.on("--idle SECONDS", Float, "idle after the work before the last RSS reading") { |value| options[:idle] = value }
  parser.on("--sample-ms MS", Float) { |value| options[:sample_ms] = value }
  parser.on("--series-points N", Integer, "at most this many RSS samples in the output") { |value| options[:series_points] = value }
end.parse!

sampler = RssSampler.new(options[:sample_ms] / 1000)
sampler.start
sleep options[:sample_ms] / 1000
baseline = Worker.read_status("VmRSS")

runner = JobRunner.new(seed: options[:seed], objects_per_job: options[:objects_per_job],
                       keep_per_mille: options[:keep_per_mille], cache_slots: options[:cache_slots],
                       io_waits: options[:io_waits], io_wait_ms: options[:io_wait_ms])
jobs = Queue.new
options[:jobs].times { |job| jobs << job }
options[:threads].times { jobs << nil }

work_started = Worker.monotonic - sampler.started_at
wall_started = Worker.monotonic
cpu_started = Worker.cpu_time
threads = Array.new(options[:threads]) do
  Thread.new do
    while (job = jobs.pop)
      runner.run_job(job)
    end
  end
end
threads.each(&:join)
wall = Worker.monotonic - wall_started
cpu = Worker.cpu_time - cpu_started
work_ended = Worker.monotonic - sampler.started_at

# A full collection, as an idle worker eventually runs one, then the idle period in which an
# allocator may give memory back.
GC.start
live_heap = runner.cache_bytes
heap_detail = { heap_live_slots: GC.stat[:heap_live_slots], memsize_of_all: ObjectSpace.memsize_of_all, cache_bytes: live_heap }
sleep options[:idle]
after_work = Worker.read_status("VmRSS")
peak = Worker.read_status("VmHWM")
sampler.stop

working = sampler.between(work_started, work_ended)
working = [after_work] if working.empty?
# The kernel updates VmHWM when pages are unmapped, not when an allocator hands them back with
# madvise (as jemalloc purges), so a sample taken before a purge can exceed it.
peak = [peak, *working].max
sorted = working.sort
middle = sorted.length / 2
steady = sorted.length.odd? ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2

result = {
  language: "ruby",
  runtime: "ruby #{RUBY_VERSION}",
  threads: options[:threads],
  jobs: options[:jobs],
  seed: options[:seed],
  objects_per_job: options[:objects_per_job],
  io_waits: options[:io_waits],
  io_wait_ms: options[:io_wait_ms],
  idle_seconds: options[:idle],
  baseline_rss_bytes: baseline,
  peak_rss_bytes: peak,
  steady_rss_bytes: steady,
  after_work_rss_bytes: after_work,
  live_heap_bytes: live_heap,
  heap_detail: heap_detail,
  wall_seconds: wall.round(4),
  cpu_seconds: cpu.round(4),
  objects_built: runner.objects_built,
  payload_length_sum: runner.payload_length_sum,
  jemalloc: Worker.mapped_jemalloc,
  jemalloc_options: Worker.jemalloc_options,
  environment: %w[LD_PRELOAD MALLOC_ARENA_MAX MALLOC_CONF].map { |name| [name, ENV[name]] }.to_h,
  samples: sampler.samples.length,
  series: Worker.downsample(sampler.samples, options[:series_points])
}
$stdout.puts JSON.generate(result)
$stdout.flush
