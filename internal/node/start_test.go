package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/config"
)

// TestStartFailsCleanly: a node whose store cannot be opened (a bbolt
// file another node holds) returns an error naming it, instead of
// panicking, and releases the admin port. (Redis down is no such failure:
// the node runs and waits for it, TestNodeStartsWithRedisDown.)
func TestStartFailsCleanly(t *testing.T) {
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := admin.Addr().String()
	admin.Close()

	cfg := config.Default()
	cfg.Node.AdminAddr = "127.0.0.1:0"
	cfg.Store.Kind = config.StoreBbolt
	cfg.Store.Bbolt.Path = filepath.Join(t.TempDir(), "e.db")
	cfg.Lavalink.Nodes = []config.LavalinkNode{{Name: "a", Address: "127.0.0.1:1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	cfg.Node.AdminAddr = adminAddr
	if _, err := Start(ctx, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil || !strings.Contains(err.Error(), "bbolt") {
		t.Fatalf("Start on a locked bbolt file = %v", err)
	}
	// The admin server it had started is gone.
	if l, err := net.Listen("tcp", adminAddr); err != nil {
		t.Fatalf("admin port still held after a failed start: %v", err)
	} else {
		l.Close()
	}
}
