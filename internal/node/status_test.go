package node

import "testing"

// TestLoopback: /status needs a bearer token unless the admin server binds
// loopback only.
func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090":      true,
		"127.0.0.2:0":         true,
		"[::1]:9090":          true,
		"localhost:9090":      true,
		"LOCALHOST:1":         true,
		":9090":               false,
		"0.0.0.0:9090":        false,
		"[::]:9090":           false,
		"10.1.2.3:9090":       false,
		"admin.internal:9090": false,
		"no-port":             false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v; want %v", addr, got, want)
		}
	}
}
