"""HTTP to the API: dlt's REST client on a retrying, throttled, pooled session (`client`),
cursor paging (`paginator`), the SDK-like retry policy (`retry`), concurrency and rate limits
(`throttle`), file bodies read as streams (`downloads`), how messages name a request
(`responses`), and the run-wide stop signal (`stopping`)."""
