package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestKillNineDuringImport kills the real daemon — `m365bridge serve` on a
// bridge.yaml, signed in through the simulator's consent, refreshing its
// one-hour-in-production access tokens every couple of seconds here —
// with SIGKILL at random moments of an import, and starts it again each
// time. The helpdesk answers a share of requests with 500, 503, 429 with
// Retry-After, or not at all (the webhook timeout ends them). For
// after_import delete and move it asserts:
//
//   - every message has exactly one event id, the one derived from its
//     immutable id;
//   - a message whose event never got a 2xx is still in its folder (after
//     every kill and at the end);
//   - no event got a 2xx after its message had left the folder (so no
//     message left before its acknowledgement);
//   - at the end every message is in the destination, its event
//     acknowledged, its ledger row done, and nothing waits in the outbox.
//
// The kill moments are drawn over the whole run (see nextKillGap), so they
// land while the folder is paged, while events are delivered and retried,
// and while post-actions run.
func TestKillNineDuringImport(t *testing.T) {
	n, kills := 2500, 8
	if testing.Short() || raceEnabled {
		n = 1000 // see raceEnabled
	}
	for _, tc := range []struct{ name, afterImport, dest string }{
		{"delete", "delete", "Deleted Items"},
		{"move", "move:Inbox/Done", "Inbox/Done"},
	} {
		t.Run(tc.name, func(t *testing.T) { killImport(t, n, kills, tc.afterImport, tc.dest) })
	}
}

// killPrior is the guess of the import's length per message before any
// progress was seen; the observed pace replaces it at once.
func killPrior(n int) time.Duration {
	if raceEnabled {
		return time.Duration(n) * 15 * time.Millisecond
	}
	return time.Duration(n) * 8 * time.Millisecond
}

// nextKillGap draws how long the daemon runs before the next SIGKILL:
// uniform over [0, 2R/(k+1)], where R is the run time the import still
// needs (from its pace so far: the daemon's running time over the fraction
// of events acknowledged; before 5% are, the prior) and k the kills left. The kills then fall at random
// moments spread over the whole import, evenly in expectation; none is
// keyed to a request count.
func nextKillGap(rng *rand.Rand, work time.Duration, done float64, killsLeft int, prior time.Duration) time.Duration {
	total := prior
	if done >= 0.05 {
		total = time.Duration(float64(work) / done)
	}
	remaining := max(total-work, 100*time.Millisecond)
	return time.Duration(rng.Float64() * 2 * float64(remaining) / float64(killsLeft+1))
}

func killImport(t *testing.T, n, kills int, afterImport, dest string) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d: %d messages, %d kills, after_import %s", seed, n, kills, afterImport)
	rig := newKillRig(t, n, afterImport, dest, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	began := time.Now()

	rig.start()
	rig.consent("support", nil)
	var work time.Duration
	midImport := 0
	complete := func() bool { acked, moved := rig.progress(); return acked == n && moved == n }
kills:
	for k := range kills {
		if k > 0 {
			rig.start()
		}
		acked, _ := rig.progress()
		gap := nextKillGap(rng, work, float64(acked)/float64(n), kills-k, killPrior(n))
		ran := time.Now()
		timer := time.NewTimer(gap) // a randomised kill point
		for wait := true; wait; {
			select {
			case <-timer.C:
				wait = false
			case <-rig.exited:
				t.Fatalf("the daemon exited by itself\n%s", rig.tail())
			case <-time.After(20 * time.Millisecond):
				if complete() {
					// Killing an idle daemon tests nothing: this run
					// finishes the import instead.
					timer.Stop()
					work += time.Since(ran)
					t.Logf("the import finished %v into the run before kill %d", time.Since(ran).Round(time.Millisecond), k+1)
					break kills
				}
			}
		}
		rig.kill() // SIGKILL: no shutdown, nothing flushed
		work += time.Since(ran)
		midImport++
		acked, moved := rig.progress()
		t.Logf("kill %d after %v: %d/%d acknowledged, %d/%d moved, %d delta requests so far",
			k+1, gap.Round(time.Millisecond), acked, n, moved, n, rig.sim.Sim.Counters().ByKind["delta"])
		rig.checkNothingMovedEarly(fmt.Sprintf("after kill %d", k+1))
	}

	// The last run finishes the import (it may be running already).
	if rig.cmd == nil {
		rig.start()
	}
	ctx := context.Background()
	// Polling, with 10 minutes as a safety net: the import takes well
	// under a minute.
	rig.waitUntil(20*time.Millisecond, 10*time.Minute, func() bool {
		if !complete() {
			return false
		}
		done, _ := rig.ledger(ctx, "support")
		return done == n
	}, func() string {
		if acked, moved := rig.progress(); acked != n || moved != n {
			return fmt.Sprintf("the import did not finish: %d/%d acknowledged, %d/%d moved", acked, n, moved, n)
		}
		_, counts := rig.ledger(ctx, "support")
		return fmt.Sprintf("every message moved, but the ledger is %v", counts)
	})
	rig.kill()
	elapsed := time.Since(began)
	rig.checkNothingMovedEarly("at the end")
	rig.checkFinal(ctx, dest)
	if midImport == 0 {
		t.Errorf("no kill landed during the import")
	}
	rig.checkNoRaceOrPanic()
	t.Logf("%d messages in %v, %d of %d kills landed during the import, %d token refreshes; %s",
		n, elapsed.Round(time.Millisecond), midImport, kills, rig.sim.Sim.TokenRequests("refresh_token"), rig.summary())
}

// checkFinal asserts the end state: one event id per message, no 2xx after
// a message left its folder, every message in dest with its event
// acknowledged, the ledger done and the outbox empty of work.
func (rig *killRig) checkFinal(ctx context.Context, dest string) {
	t := rig.t
	t.Helper()
	rig.mu.Lock()
	idsOf := map[string]map[string]bool{} // immutable id -> event ids seen
	var late, stray, authFailed []string
	for _, r := range rig.requests {
		if r.typ == webhooks.TypeChannelAuthFailed {
			authFailed = append(authFailed, r.eventID)
		}
		if !strings.HasPrefix(r.typ, "mail.") {
			continue
		}
		if !rig.ids[r.graphID] {
			stray = append(stray, r.eventID)
			continue
		}
		if idsOf[r.graphID] == nil {
			idsOf[r.graphID] = map[string]bool{}
		}
		idsOf[r.graphID][r.eventID] = true
		if mv, ok := rig.moved[r.graphID]; ok && r.answer == answer2xx && !r.gone && r.seq > mv {
			late = append(late, fmt.Sprintf("%s: 2xx #%d after the move #%d", r.eventID, r.seq, mv))
		}
	}
	for id := range rig.ids {
		want := rig.eventID(id)
		if got := idsOf[id]; len(got) != 1 || !got[want] {
			t.Errorf("message %s went out under event ids %v, want exactly %s", id, keys(got), want)
		}
		if _, ok := rig.acked[want]; !ok {
			t.Errorf("message %s: its event %s never got a 2xx", id, want)
		}
	}
	rig.mu.Unlock()
	if len(late) > 0 {
		t.Errorf("%d events got a 2xx after their message had left the folder, e.g. %s", len(late), late[0])
	}
	if len(stray) > 0 {
		t.Errorf("%d mail events for messages that were never injected, e.g. %s", len(stray), stray[0])
	}
	if len(authFailed) > 0 {
		t.Errorf("the channel lost its sign-in during the run (%d channel.auth_failed events)", len(authFailed))
	}

	if left := rig.sim.Sim.Messages(killMailbox, killSource); len(left) != 0 {
		t.Errorf("%d messages still in %s", len(left), killSource)
	}
	inDest := map[string]bool{}
	for _, mi := range rig.sim.Sim.Messages(killMailbox, dest) {
		inDest[mi.ImmutableID] = true
	}
	for id := range rig.ids {
		if !inDest[id] {
			t.Errorf("message %s is not in %s", id, dest)
		}
	}
	if refreshes := rig.sim.Sim.TokenRequests("refresh_token"); refreshes == 0 {
		t.Errorf("the daemon never refreshed its access token: the run did not cover refresh")
	}

	if done, ledger := rig.ledger(ctx, "support"); done != rig.n || len(ledger) != 1 {
		t.Errorf("ledger %v, want %d done", ledger, rig.n)
	}
	db := rig.openState(ctx)
	defer db.Close()
	counts, err := db.Outbox().Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []deliver.State{deliver.StatePending, deliver.StateDead, deliver.StateRejected} {
		if c := counts["helpdesk"][st]; c != 0 {
			t.Errorf("outbox holds %d %s rows at the end: %v", c, st, counts)
		}
	}
}

// summary counts the receiver's answers and re-deliveries.
func (rig *killRig) summary() string {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	by := map[string]int{}
	ok := 0
	for _, r := range rig.requests {
		by[r.answer]++
		if r.answer == answer2xx && strings.HasPrefix(r.typ, "mail.") {
			ok++
		}
	}
	return fmt.Sprintf("%d requests %v; %d mail 2xx for %d messages (%d re-deliveries under the same id)",
		len(rig.requests), by, ok, rig.n, ok-rig.n)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
