"""HTTP to the API: dlt's REST client on a retrying, throttled, pooled session (`client`),
cursor paging (`paginator`), the SDK-like retry policy (`retry`), concurrency and rate limits
(`throttle`; `RetryingSession.send` also reads streamed file bodies, so one retry loop
covers every request, body included), how messages name a request
(`responses`), and the run-wide stop signal (`stopping`)."""
