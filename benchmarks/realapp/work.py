"""The work of the benchmark's Python app (Celery tasks), the same as work.rb does in Ruby.

JSON documents of 1 KB to 2 MB generated and parsed, CSV exports of thousands of rows, string
processing, and a small per-process cache of results whose long-lived entries sit among the
short-lived garbage, as caches do in real apps.
"""

import csv
import datetime
import io
import json
import random
import threading

CACHE_ENTRIES = 64
WORDS = ("invoice customer order shipment refund account payment status total amount pending region "
         "product quantity discount tax currency export report daily").split()
STATUSES = ("paid", "open", "refunded", "void")
EPOCH = datetime.date(2024, 1, 1)

_cache = {}
_cache_lock = threading.Lock()


def run(kind, size, seed):
    """One job of KIND ("json", "csv" or "text") of SIZE (bytes, or rows for csv) from SEED."""
    rng = random.Random(seed)
    if kind == "json":
        output = _json(size, rng)
    elif kind == "csv":
        output = _csv(size, rng)
    elif kind == "text":
        output = _text(size, rng)
    else:
        raise ValueError("unknown job kind %r" % (kind,))
    _remember(seed, output, rng)
    return output


def _record(record_id, rng):
    return {
        "id": record_id,
        "name": "customer-%d" % rng.randrange(1000000),
        "email": "user%d@example.com" % rng.randrange(100000),
        "amount": round(rng.random() * 10000, 2),
        "status": STATUSES[rng.randrange(len(STATUSES))],
        "tags": ["tag%d" % rng.randrange(50) for _ in range(rng.randrange(4))],
        "created_at": (EPOCH + datetime.timedelta(days=rng.randrange(700))).isoformat(),
    }


def _json(size, rng):
    records = [_record(record_id, rng) for record_id in range(max(size // 170, 1))]
    document = json.dumps({"data": records, "count": len(records)})
    parsed = json.loads(document)
    total = sum(row["amount"] for row in parsed["data"])
    return document + "\n" + json.dumps({"total": round(total, 2)})


def _csv(rows, rng):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "name", "email", "amount", "status", "created_at"])
    for record_id in range(rows):
        row = _record(record_id, rng)
        writer.writerow([row["id"], row["name"], row["email"], row["amount"], row["status"], row["created_at"]])
    return out.getvalue()


def _text(size, rng):
    words = [WORDS[rng.randrange(len(WORDS))] for _ in range(max(size // 8, 1))]
    sentences = [" ".join(word.capitalize() for word in words[i:i + 12]) + "." for i in range(0, len(words), 12)]
    return "\n".join(sentences).replace("Total", "TOTAL").replace("Amount", "AMOUNT")


def _remember(seed, output, rng):
    entry = output[:2000 + rng.randrange(48000)]
    with _cache_lock:
        if len(_cache) >= CACHE_ENTRIES:
            del _cache[list(_cache)[rng.randrange(len(_cache))]]
        _cache[seed] = entry
