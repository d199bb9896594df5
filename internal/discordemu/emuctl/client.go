package emuctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// Client calls a control API at URL (http://127.0.0.1:P).
type Client struct {
	URL  string
	HTTP *http.Client // default http.DefaultClient
}

// NewWorld creates a world.
func (c *Client) NewWorld(ctx context.Context, spec WorldSpec) (World, error) {
	var w World
	return w, c.do(ctx, http.MethodPost, "/worlds", spec, &w)
}

// Status returns a world's status.
func (c *Client) Status(ctx context.Context, id int) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodGet, "/worlds/"+strconv.Itoa(id), nil, &st)
}

// Load runs a load on a world and returns when it is done (ctx bounds it: cancelling
// stops the load).
func (c *Client) Load(ctx context.Context, id int, req LoadRequest) (discordemu.LoadResult, error) {
	var res discordemu.LoadResult
	return res, c.do(ctx, http.MethodPost, "/worlds/"+strconv.Itoa(id)+"/load", req, &res)
}

// CloseWorld closes a world's emulator.
func (c *Client) CloseWorld(ctx context.Context, id int) error {
	return c.do(ctx, http.MethodDelete, "/worlds/"+strconv.Itoa(id), nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emuctl %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	rq, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return fmt.Errorf("emuctl %s %s: %w", method, path, err)
	}
	if in != nil {
		rq.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	rs, err := hc.Do(rq)
	if err != nil {
		return fmt.Errorf("emuctl %s %s: %w", method, path, err)
	}
	defer rs.Body.Close()
	if rs.StatusCode >= 300 {
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(rs.Body, 4096))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = string(b)
		}
		return fmt.Errorf("emuctl %s %s: %s: %s", method, path, rs.Status, eb.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(rs.Body).Decode(out); err != nil {
		return fmt.Errorf("emuctl %s %s: decode: %w", method, path, err)
	}
	return nil
}
