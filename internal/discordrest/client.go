package discordrest

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
)

// retryBackoff spaces the retries of a 5xx: Discord's front end answers
// them for moments, and three tries within ~2 s fit an interaction's
// budget and a now-playing edit's patience alike.
var retryBackoff = supervisor.Backoff{Base: 200 * time.Millisecond, Max: time.Second, Jitter: 0.5, Limit: 3}

// New makes disgo's REST client with the Limiter and 5xx retries. opts are
// disgo's (logger, HTTP client, URL); the rate limiter option is set here.
func New(token string, log *slog.Logger, reg prometheus.Registerer, opts ...rest.ClientConfigOpt) (rest.Rest, *Limiter, error) {
	l, err := NewLimiter(log, reg)
	if err != nil {
		return nil, nil, err
	}
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ensemble_discord_rest_retries_total",
		Help: "Discord REST calls sent again after a 5xx answer.",
	})
	if err := reg.Register(retries); err != nil {
		return nil, nil, fmt.Errorf("register metrics: %w", err)
	}
	c := rest.NewClient(token, append(opts, rest.WithRateLimiter(l))...)
	return rest.New(&retrier{Client: c, backoff: retryBackoff, retries: retries}), l, nil
}

// retrier sends a call again after a 5xx answer when a second try cannot
// do anything twice: reads, replacements (PUT, PATCH), deletions,
// interaction callbacks (Discord takes one; a second after a first that
// went through is refused with 40060) and channel messages sent with an
// enforced nonce. Other calls, such as follow-ups, fail with the 5xx.
type retrier struct {
	rest.Client
	backoff supervisor.Backoff
	retries prometheus.Counter
}

func (c *retrier) Do(ep *rest.CompiledEndpoint, rqBody, rsBody any, opts ...rest.RequestOpt) error {
	err := c.Client.Do(ep, rqBody, rsBody, opts...)
	if !serverError(err) || !idempotent(ep, rqBody) {
		return err
	}
	for attempt := 0; ; attempt++ {
		d, ok := c.backoff.Delay(attempt, rand.Float64())
		if !ok {
			return err
		}
		c.retries.Inc()
		// disgo waits out the delay under the call's context, so a retry
		// never outlives the caller's deadline.
		next := c.Client.Do(ep, rqBody, rsBody, append(opts[:len(opts):len(opts)], rest.WithDelay(d))...)
		switch {
		case next == nil, tookEffect(ep, next):
			return nil
		case !serverError(next):
			// The deadline, or a new error: report the 5xx that started
			// it along with it.
			return fmt.Errorf("%w (after retry: %w)", err, next)
		}
		err = next
	}
}

func serverError(err error) bool {
	var re *rest.Error
	if !errors.As(err, &re) || re.Response == nil {
		return false
	}
	switch re.Response.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func idempotent(ep *rest.CompiledEndpoint, rqBody any) bool {
	switch ep.Endpoint.Method {
	case http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	if ep.Endpoint == rest.CreateInteractionResponse {
		return true
	}
	m, ok := rqBody.(discord.MessageCreate)
	return ok && ep.Endpoint == rest.CreateMessage && m.EnforceNonce && m.Nonce != ""
}

// tookEffect: a retry refused because the first try went through after
// all (the answer to it was what failed).
func tookEffect(ep *rest.CompiledEndpoint, err error) bool {
	var re *rest.Error
	if !errors.As(err, &re) {
		return false
	}
	switch {
	case ep.Endpoint == rest.CreateInteractionResponse:
		return re.Code == rest.JSONErrorCodeInteractionAlreadyAcknowledged
	case ep.Endpoint.Method == http.MethodDelete:
		return re.Code == rest.JSONErrorCodeUnknownMessage
	}
	return false
}
