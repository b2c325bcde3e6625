package sieve

import "time"

var fixedTime = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
