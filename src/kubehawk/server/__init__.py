"""``kubehawk serve``: live ingestion over HTTP(S) with a durable journal.

* :mod:`.app` — the Starlette app (``POST /audit``, ``POST /admission``, health, metrics)
* :mod:`.journal` — SQLite WAL journal: dedup, processed cursor, emitted alerts
* :mod:`.pipeline` — detection over the journal and delivery to outputs
* :mod:`.ingest` — request body -> validated journal records
* :mod:`.auth`, :mod:`.settings`, :mod:`.metrics`, :mod:`.cli`
"""
