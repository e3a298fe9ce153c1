# The work of the benchmark's Ruby apps (Sidekiq jobs and puma requests): what Rails background
# jobs and endpoints typically do with memory. JSON documents of 1 KB to 2 MB generated and parsed,
# CSV exports of thousands of rows, string processing, and a small per-process cache of results
# whose long-lived entries sit among the short-lived garbage, as caches do in real apps.
# benchmarks/realapp/work.py does the same work in Python.
require "csv"
require "date"
require "json"

module Work
  CACHE_ENTRIES = 64
  WORDS = %w[invoice customer order shipment refund account payment status total amount
             pending region product quantity discount tax currency export report daily].freeze
  STATUSES = %w[paid open refunded void].freeze
  EPOCH = Date.new(2024, 1, 1)

  @cache = {}
  @cache_lock = Mutex.new

  # Runs one job of KIND ("json", "csv" or "text") of SIZE (bytes, or rows for csv) from SEED;
  # returns what a response or an export would hold.
  def self.run(kind, size, seed)
    rng = Random.new(seed)
    output =
      case kind
      when "json" then json(size, rng)
      when "csv" then csv(size, rng)
      when "text" then text(size, rng)
      else raise ArgumentError, "unknown job kind #{kind.inspect}"
      end
    remember(seed, output, rng)
    output
  end

  def self.record(id, rng)
    {
      "id" => id,
      "name" => "customer-#{rng.rand(1_000_000)}",
      "email" => "user#{rng.rand(100_000)}@example.com",
      "amount" => (rng.rand * 10_000).round(2),
      "status" => STATUSES[rng.rand(STATUSES.size)],
      "tags" => Array.new(rng.rand(4)) { "tag#{rng.rand(50)}" },
      "created_at" => (EPOCH + rng.rand(700)).iso8601,
    }
  end

  # About 170 bytes of JSON a record.
  def self.json(size, rng)
    records = Array.new([size / 170, 1].max) { |id| record(id, rng) }
    document = JSON.generate("data" => records, "count" => records.size)
    parsed = JSON.parse(document)
    total = parsed["data"].sum { |row| row["amount"] }
    document << "\n" << JSON.generate("total" => total.round(2))
  end

  def self.csv(rows, rng)
    CSV.generate do |out|
      out << %w[id name email amount status created_at]
      rows.times do |id|
        row = record(id, rng)
        out << row.values_at("id", "name", "email", "amount", "status", "created_at")
      end
    end
  end

  def self.text(size, rng)
    words = Array.new([size / 8, 1].max) { WORDS[rng.rand(WORDS.size)] }
    sentences = words.each_slice(12).map { |slice| slice.map(&:capitalize).join(" ") + "." }
    sentences.join("\n").gsub(/Total|Amount/) { |word| word.upcase }
  end

  def self.remember(seed, output, rng)
    entry = output.byteslice(0, 2_000 + rng.rand(48_000))
    @cache_lock.synchronize do
      @cache.delete(@cache.keys[rng.rand(@cache.size)]) if @cache.size >= CACHE_ENTRIES
      @cache[seed] = entry
    end
  end
end
