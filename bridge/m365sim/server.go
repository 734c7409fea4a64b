package m365sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Sim served over real HTTP, for tests in any package, the demo
// and `m365bridge sim`.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:43121: the login URL (Entra
	// paths start with /{tenant}/) and, with /v1.0 appended, the Graph URL.
	URL    string
	Sim    *Sim
	Seeded *Seeded

	srv       *http.Server
	served    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// StartServer starts a sim on a free loopback port with seed applied
// (DefaultSeed when nil). Close it when done.
func StartServer(opts Options, seed *Seed) (*Server, error) {
	return Listen("127.0.0.1:0", opts, seed)
}

// Listen starts a sim on addr with seed applied (DefaultSeed when nil). It
// binds before returning, so a busy port is an error here, not later.
func Listen(addr string, opts Options, seed *Seed) (*Server, error) {
	if seed == nil {
		seed = DefaultSeed()
	}
	sim := New(opts)
	seeded, err := sim.Apply(seed)
	if err != nil {
		return nil, fmt.Errorf("start sim: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start sim: %w", err)
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), Sim: sim, Seeded: seeded,
		srv:    &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		s.srv.Serve(ln) // returns http.ErrServerClosed on Shutdown/Close
	}()
	return s, nil
}

// GraphURL is the Graph base URL, URL + "/v1.0".
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// Shutdown stops accepting requests and waits for those in flight until ctx
// ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
		}
		<-s.served
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			s.closeErr = fmt.Errorf("stop sim: %w", err)
		}
	})
	return s.closeErr
}

// Close stops the server, giving requests in flight a few seconds. It is
// idempotent.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}
