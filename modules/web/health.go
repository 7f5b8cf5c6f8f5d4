package web

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// health reports each dependency (GET /healthz): 200 when all answer or
// only those marked Degraded fail, 503 when any other does not answer.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]string{}
	status := http.StatusOK
	for _, c := range s.cfg.Health {
		switch err := c.Check(ctx); {
		case err != nil && c.Degraded:
			body[c.Name] = "degraded: " + err.Error()
			body["status"] = "degraded"
		case err != nil:
			body[c.Name] = "down: " + err.Error()
			status = http.StatusServiceUnavailable
		default:
			body[c.Name] = "ok"
		}
	}
	if status != http.StatusOK {
		body["status"] = "unavailable"
	} else if body["status"] == "" {
		body["status"] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
