package testserver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func redisCmd(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestRedisStartsRestartsAndLosesData(t *testing.T) {
	r := StartRedis(t)
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") {
		t.Fatalf("addr %q", r.Addr)
	}
	if got := redisCmd(t, r.Addr, "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	addr := r.Addr
	r.Restart(t)
	if r.Addr != addr {
		t.Logf("port changed on restart: %s -> %s", addr, r.Addr)
	}
	if got := redisCmd(t, r.Addr, "EXISTS k"); got != ":0" {
		t.Fatalf("after restart EXISTS = %q, want :0 (no persistence)", got)
	}
	r.Stop()
	if c, err := net.DialTimeout("tcp", r.Addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("redis still listening after Stop")
	}
}

func TestEtcdStarts(t *testing.T) {
	e := StartEtcd(t)
	res, err := http.Get(e.Endpoint + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(b), "etcdserver") {
		t.Fatalf("/version = %d %s", res.StatusCode, b)
	}
}
