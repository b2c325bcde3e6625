package httpd

import (
	"context"
	"log/slog"
	"net/http"
	"petrel/internal/lib/connid"
	"strings"
	"time"
)

// Check is one condition of readiness: Run returns nil when it holds.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// checkTimeout bounds one readiness check: a store that does not answer within it is not
// ready, whatever the reason.
const checkTimeout = 5 * time.Second

// Healthz is the liveness probe: the process serves HTTP. It checks nothing else on purpose;
// a supervisor restarts a process whose liveness fails, and a slow store is no reason to.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
}

// Readyz is the readiness probe: 200 when every check passes, else 503 naming the checks
// that failed (their errors go to the log, not to whoever asks).
func Readyz(log *slog.Logger, checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		var failed []string
		for _, c := range checks {
			if err := c.Run(ctx); err != nil {
				log.Warn("readiness check failed", "conn", connid.From(r.Context()), "check", c.Name, "err", err)
				failed = append(failed, c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + strings.Join(failed, ", ") + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
}
