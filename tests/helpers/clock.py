"""Virtual time for the request gate: its clock and sleep are injected."""


class FakeClock:
    """Time that only moves when the gate sleeps (or a test sets it): makes pacing and the
    rate cap checkable exactly."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
