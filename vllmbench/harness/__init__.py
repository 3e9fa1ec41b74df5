"""The load generator. Pure modules (schedule, lengths, records, sse, aggregate, sweep,
raw, config) import no I/O library; ``client`` is the only one that imports aiohttp.

Nothing is imported here, so that a pure module can be used (by the converters of
``vllmbench.standardize``) without loading aiohttp.
"""
