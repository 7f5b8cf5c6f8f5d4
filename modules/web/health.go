package web

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// health reports each dependency (GET /healthz): 200 when all answer,
// 503 when any does not.
func (s *server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]string{}
	status := http.StatusOK
	for _, c := range s.cfg.Health {
		if err := c.Check(ctx); err != nil {
			body[c.Name] = "down: " + err.Error()
			status = http.StatusServiceUnavailable
		} else {
			body[c.Name] = "ok"
		}
	}
	body["status"] = "ok"
	if status != http.StatusOK {
		body["status"] = "unavailable"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
