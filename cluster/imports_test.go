package cluster

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules enforces the import rules of ARCHITECTURE.md on every package of
// the module (test files excluded: emulator conformance tests drive the
// real clients on purpose):
//   - only actors/lavalink imports disgolink;
//   - only actors/shard and internal/commands import disgo's gateway,
//     events or bot packages, plus internal/node, the composition root,
//     which passes gateway options through to the shards;
//   - disgo's REST client only in internal/commands, internal/discordrest
//     (its rate limiter and retries) and internal/node;
//   - actors talk by messages: no actor package imports another, so the
//     types they share live in their own packages (internal/audio,
//     internal/commands); actors/supervisor holds policies, not an actor;
//   - actors/supervisor imports nothing of the project, so that cluster
//     can use its Backoff without a cycle, and cluster imports no other
//     actors/ package.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/ensemble-bot/ensemble/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/ensemble-bot/ensemble/"
	rules := []struct {
		prefix  string
		allowed []string
	}{
		{"github.com/disgoorg/disgolink", []string{"actors/lavalink"}},
		{"github.com/disgoorg/disgo/gateway", []string{"actors/shard", "internal/commands", "internal/node"}},
		{"github.com/disgoorg/disgo/events", []string{"actors/shard", "internal/commands"}},
		{"github.com/disgoorg/disgo/bot", []string{"actors/shard", "internal/commands"}},
		{"github.com/disgoorg/disgo/rest", []string{"internal/commands", "internal/discordrest", "internal/node"}},
	}
	const policies = "actors/supervisor"
	within := []struct {
		rule      string
		forbidden func(pkg, imp string) bool
	}{
		{"no actor package imports another", func(pkg, imp string) bool {
			return strings.HasPrefix(pkg, "actors/") && strings.HasPrefix(imp, "actors/") && imp != policies && pkg != policies
		}},
		{"actors/supervisor imports nothing of the project", func(pkg, _ string) bool {
			return pkg == policies
		}},
		{"cluster imports no actor package", func(pkg, imp string) bool {
			return (pkg == "cluster" || strings.HasPrefix(pkg, "cluster/")) && strings.HasPrefix(imp, "actors/") && imp != policies
		}},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		checked++
		for _, imp := range fields[1:] {
			if own, ok := strings.CutPrefix(imp, mod); ok {
				for _, r := range within {
					if r.forbidden(pkg, own) {
						t.Errorf("%s imports %s: %s (ARCHITECTURE.md, Import rules)", pkg, own, r.rule)
					}
				}
			}
			for _, r := range rules {
				if !strings.HasPrefix(imp, r.prefix) {
					continue
				}
				ok := false
				for _, a := range r.allowed {
					if pkg == a {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may (ARCHITECTURE.md, Import rules)", pkg, imp, r.allowed)
				}
			}
		}
	}
	if checked < 15 {
		t.Fatalf("only %d packages listed; the check is not seeing the module", checked)
	}
}
