"""Local fake services for tests (real recorded data served over real protocols; no mocks)."""
