package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The kill rig: the daemon rig with one daemon on SQLite, the simulator
// (moves reported through OnMove) and a faulty helpdesk receiver. One
// counter orders what the receiver acknowledged against what the
// simulator moved.

// Receiver answers, drawn per request.
const (
	answer2xx     = "204"
	answer500     = "500"
	answer503     = "503"
	answer429     = "429"
	answerTimeout = "timeout" // held until the bridge gave up
)

// killShares is the receiver's mix: the rest is 204. The webhook's timeout
// (killWebhookTimeout) ends a held request; 429 carries Retry-After: 1.
var killShares = []struct {
	answer string
	share  float64
}{{answer500, 0.05}, {answer503, 0.04}, {answer429, 0.002}, {answerTimeout, 0.01}}

const killWebhookTimeout = 250 * time.Millisecond

// killRequest is one request the receiver answered.
type killRequest struct {
	seq     int64 // on the shared counter; for a 2xx taken before the answer was written
	eventID string
	graphID string // the event's article.graph_id ("" for channel events)
	typ     string
	answer  string
	// gone: the sender had already hung up when the 2xx was numbered (its
	// timeout, or a kill, while this handler was still on its way under
	// load), so the bridge never read this answer. Such a 2xx neither
	// acknowledges the event nor counts as a send after the move.
	gone bool
}

type killRig struct {
	*daemonProc
	n      int
	dest   string // the folder after_import puts mail in
	sim    *m365sim.Server
	recv   *httptest.Server
	secret string

	seq atomic.Int64 // orders acknowledgements and moves

	mu       sync.Mutex
	rng      *rand.Rand
	requests []killRequest
	acked    map[string]int64 // event id -> seq of its first 2xx
	moved    map[string]int64 // immutable id -> seq when it first left killSource
	movedTo  map[string]string
	ids      map[string]bool // immutable ids of the injected messages
}

// newKillRig starts the simulator (short-lived access tokens, so the
// daemon refreshes during the run), the receiver, injects n messages and
// writes bridge.yaml with afterImport.
func newKillRig(t *testing.T, n int, afterImport, dest string, seed uint64) *killRig {
	t.Helper()
	rig := &killRig{daemonProc: newDaemonProc(t, ""), n: n, dest: dest,
		rng: rand.New(rand.NewPCG(seed, 11)), acked: map[string]int64{}, moved: map[string]int64{},
		movedTo: map[string]string{}, ids: map[string]bool{}}
	rig.sim = startRigSim(t, rig.public, m365sim.Options{AccessTokenTTL: 4 * time.Second, OnMove: rig.onMove}, nil)
	if dest != "Deleted Items" {
		if _, err := rig.sim.Sim.CreateFolder(killMailbox, dest); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		mi, err := rig.sim.Sim.InjectMessage(killMailbox, m365sim.NewMessage{Folder: killSource,
			Subject: fmt.Sprintf("kill %d", i), From: fmt.Sprintf("c%d@example.com", i%7), Body: "body"})
		if err != nil {
			t.Fatal(err)
		}
		rig.ids[mi.ImmutableID] = true
	}

	rig.secret, _ = webhooks.GenerateSecret()
	rig.secrets = rigSecrets(rig.sim, rig.secret)
	rig.recv = httptest.NewServer(http.HandlerFunc(rig.receive))
	t.Cleanup(rig.recv.Close)

	dir := t.TempDir()
	rig.writeConfig(filepath.Join(dir, "bridge.yaml"), filepath.Join(dir, "data"), rigConfig{
		log: "warn", sim: rig.sim, microsoft: "refresh_margin: 2s",
		webhooks: helpdeskHook(rig.recv.URL, killWebhookTimeout, "[25ms]", 30),
		channels: fmt.Sprintf(`  - name: support
    mailbox: {type: shared, address: %s}
    folder: %s
    group: Support
    poll_interval: 10s
    after_import: %s
`, killMailbox, killSource, afterImport)})
	return rig
}

// onMove is the simulator's Options.OnMove: it runs under the sim's lock,
// before the Graph request that moved the message is answered.
func (rig *killRig) onMove(ev m365sim.MoveEvent) {
	if !strings.EqualFold(ev.Mailbox, killMailbox) || ev.From != killSource {
		return
	}
	seq := rig.seq.Add(1)
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if _, ok := rig.moved[ev.ImmutableID]; !ok {
		rig.moved[ev.ImmutableID] = seq
		rig.movedTo[ev.ImmutableID] = ev.To
	}
}

// receive is the helpdesk: it verifies the signature, then answers with a
// drawn fault or 204, and records the request.
func (rig *killRig) receive(w http.ResponseWriter, r *http.Request) {
	ev, md, id, ok := readHook(rig.t, w, r, rig.secret)
	if !ok {
		return
	}
	rig.mu.Lock()
	x, answer := rig.rng.Float64(), answer2xx
	for _, s := range killShares {
		if x < s.share {
			answer = s.answer
			break
		}
		x -= s.share
	}
	req := killRequest{eventID: id, graphID: md.Article.GraphID, typ: ev.Type, answer: answer}
	if answer == answer2xx {
		// Taken before the answer is written: a move the bridge makes
		// after reading it gets a higher number.
		req.seq = rig.seq.Add(1)
		req.gone = r.Context().Err() != nil
		if _, ok := rig.acked[id]; !ok && !req.gone {
			rig.acked[id] = req.seq
		}
		rig.requests = append(rig.requests, req)
	}
	rig.mu.Unlock()
	switch answer {
	case answer2xx:
		w.WriteHeader(http.StatusNoContent)
		return
	case answer500:
		http.Error(w, "helpdesk database unavailable", http.StatusInternalServerError)
	case answer503:
		http.Error(w, "helpdesk restarting", http.StatusServiceUnavailable)
	case answer429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case answerTimeout:
		select {
		case <-r.Context().Done(): // the bridge's timeout, or its death
		case <-time.After(time.Minute):
			rig.t.Errorf("receiver: the bridge held a request for a minute with a %s timeout", killWebhookTimeout)
			http.Error(w, "held too long", http.StatusServiceUnavailable)
		}
	}
	req.seq = rig.seq.Add(1)
	rig.mu.Lock()
	rig.requests = append(rig.requests, req)
	rig.mu.Unlock()
}

// progress is what the test can see of the import: messages whose event
// got a 2xx, and messages that left the folder.
func (rig *killRig) progress() (acked, moved int) {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	for id := range rig.ids {
		if _, ok := rig.acked[rig.eventID(id)]; ok {
			acked++
		}
		if _, ok := rig.moved[id]; ok {
			moved++
		}
	}
	return acked, moved
}

func (rig *killRig) eventID(immutableID string) string {
	return webhooks.EventID(killTenant, killMailbox, immutableID)
}

// checkNothingMovedEarly fails the test for every message that left its
// folder while its event had no 2xx, or whose first 2xx came after the
// move. It looks at the mailbox itself as well as at the recorded moves.
func (rig *killRig) checkNothingMovedEarly(when string) {
	t := rig.t
	t.Helper()
	inFolder := map[string]bool{}
	for _, mi := range rig.sim.Sim.Messages(killMailbox, killSource) {
		inFolder[mi.ImmutableID] = true
	}
	rig.mu.Lock()
	defer rig.mu.Unlock()
	var bad []string
	for id := range rig.ids {
		ackSeq, acked := rig.acked[rig.eventID(id)]
		moveSeq, moved := rig.moved[id]
		switch {
		case !inFolder[id] && !acked:
			bad = append(bad, fmt.Sprintf("%s left %s (to %q) and its event never got a 2xx", id, killSource, rig.movedTo[id]))
		case moved && acked && ackSeq > moveSeq:
			bad = append(bad, fmt.Sprintf("%s left %s at #%d, its event's first 2xx came later at #%d", id, killSource, moveSeq, ackSeq))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: %d messages left the folder before the receiver acknowledged them, e.g.\n  %s\ndaemon output:\n%s",
			when, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n  "), rig.tail())
	}
}
