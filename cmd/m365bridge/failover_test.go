package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/bridge/store/storetest"
	"github.com/m365bridge/m365bridge/webhooks"
)

// The failover rig: three daemons of the daemon rig on one PostgreSQL
// schema, with the simulator and the helpdesk receiver in the test
// process. The receiver answers mail events only as far as the test hands
// it tokens, so the test decides how far the import has got when it kills
// or pauses a daemon.

const (
	foLeaseTTL = 2 * time.Second
	foPoll     = 10 * time.Second // every channel's poll_interval (the shortest allowed)
)

type foRig struct {
	t        testing.TB
	dsn      string
	sim      *m365sim.Server
	recv     *httptest.Server
	secret   string
	channels []string          // channel names; channel c reads folder Inbox/<c>
	mailbox  map[string]string // channel -> the mailbox it reads
	daemons  []*daemonProc

	graph *httptest.Server // Graph as the daemons see it: the simulator behind holdProxy

	// The hold: the first $batch with a move of a message of one of
	// holdChannels gets its answer held (after the simulator moved it)
	// until unhold closes; held closes when it is held.
	holdArmed    atomic.Bool
	holdChannels map[string]bool
	held, unhold chan struct{}

	tokens   chan struct{} // one per mail event the receiver may acknowledge
	progress chan struct{} // pinged at every first 2xx and every move
	seq      atomic.Int64

	mu      sync.Mutex
	ids     map[string]string // immutable id -> channel
	acked   map[string]int64  // event id -> seq of its first 2xx
	moved   map[string]int64  // immutable id -> seq of its move
	strange []string          // mail event ids that are no message's derived id
}

// TestFailoverThreeDaemons runs three daemons on one PostgreSQL database
// over four channels, kills one channel owner with SIGKILL in the middle
// of the import and pauses another with SIGSTOP past its lease (then
// continues it). It asserts that each channel is taken over within one
// poll of its lease running out (by the database's clock: the new lease's
// acquisition against the old one's expiry), that every message is
// delivered and moved, under one event id, never moved before its 2xx,
// and that the paused daemon, continued, finds its leases lost and
// commits nothing for those channels (fencing).
func TestFailoverThreeDaemons(t *testing.T) {
	perChannel := 40
	if !raceEnabled && !testing.Short() {
		perChannel = 400
	}
	rig := newFoRig(t, 4, perChannel)
	for _, d := range rig.daemons {
		rig.start(d)
	}
	rig.audit()
	rig.connectAll()
	total := len(rig.channels) * perChannel
	owners := rig.waitOwners(func(map[string]store.LeaseInfo) bool { return true })

	rig.release(total / 4)
	rig.waitAcked(total / 4)
	// The leases as they are just before the kill: waitTakeover judges the
	// takeover against the victim's last expiry, and a snapshot from before
	// the first quarter's import (seconds of renewals ago on a loaded
	// machine) made a prompt takeover look 20 s late.
	owners = rig.waitOwners(func(map[string]store.LeaseInfo) bool { return true })
	victim := rig.daemonOwning(owners)
	killedAt := time.Now()
	rig.kill(victim)
	after := rig.waitTakeover(owners, victim)
	t.Logf("SIGKILL %s: its channels taken over %s after the kill", victim.name, time.Since(killedAt).Round(time.Millisecond))

	// Pause a daemon right after Graph moved one of its messages and before
	// it reads the answer: continued, its first act is to record that
	// post-action, a write its lost lease must refuse.
	paused := rig.daemonOwning(after)
	rig.armHold(after, paused)
	rig.release(total / 4)
	select {
	case <-rig.held:
	case <-time.After(2 * time.Minute): // safety net
		t.Fatalf("no move of %s's channels %v was seen\n%s", paused.name, rig.holdChannels, rig.tails())
	}
	beforePause := rig.waitOwners(func(map[string]store.LeaseInfo) bool { return true })
	paused.signal(syscall.SIGSTOP)
	close(rig.unhold)
	rig.waitTakeover(beforePause, paused)
	rig.release(total / 8) // the survivor imports while the paused daemon sleeps
	rig.waitFor("some progress while paused", func() bool {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		return len(rig.acked) > total/4
	})
	paused.signal(syscall.SIGCONT)
	rig.release(total)
	rig.waitAcked(total)
	rig.waitMoved(total)

	rig.checkFinal(after, paused)
	rig.checkClusterView(paused)
	rig.checkAudit()
}

func newFoRig(t testing.TB, channels, perChannel int) *foRig {
	return newFoRigMailboxes(t, channels, perChannel, false)
}

// newFoRigMailboxes is newFoRig; with ownMailboxes each channel reads a
// shared mailbox of its own (ch<c>@contoso.com, Full Access for the signed-in
// agent) instead of a folder of the one shared mailbox, so that Graph's
// per-mailbox limits apply to each channel apart, as for an MSP's customers.
func newFoRigMailboxes(t testing.TB, channels, perChannel int, ownMailboxes bool) *foRig {
	dsn := storetest.Postgres(t)
	rig := &foRig{t: t, dsn: dsn, mailbox: map[string]string{}, tokens: make(chan struct{}, 4*channels*perChannel), progress: make(chan struct{}, 1),
		ids: map[string]string{}, acked: map[string]int64{}, moved: map[string]int64{}}
	for i := range 3 {
		rig.daemons = append(rig.daemons, newDaemonProc(t, string(rune('A'+i))))
	}
	simSeed := m365sim.DefaultSeed()
	for c := range channels {
		rig.mailbox[fmt.Sprintf("ch%d", c)] = killMailbox
		if ownMailboxes {
			addr := fmt.Sprintf("ch%d@contoso.com", c)
			rig.mailbox[fmt.Sprintf("ch%d", c)] = addr
			simSeed.SharedMailboxes = append(simSeed.SharedMailboxes, m365sim.SeedSharedMailbox{Address: addr,
				DisplayName: addr, FullAccess: []string{"agent@contoso.com"}})
		}
	}
	// One public_url for the three, as behind a load balancer.
	sim := startRigSim(t, rig.daemons[0].public, m365sim.Options{OnMove: rig.onMove}, simSeed)
	rig.sim = sim
	var chYAML strings.Builder
	for c := range channels {
		name := fmt.Sprintf("ch%d", c)
		rig.channels = append(rig.channels, name)
		if _, err := sim.Sim.CreateFolder(rig.mailbox[name], "Inbox/"+name); err != nil {
			t.Fatal(err)
		}
		for i := range perChannel {
			mi, err := sim.Sim.InjectMessage(rig.mailbox[name], m365sim.NewMessage{Folder: "Inbox/" + name,
				Subject: fmt.Sprintf("%s %d", name, i), From: fmt.Sprintf("c%d@example.com", i%7), Body: "body"})
			if err != nil {
				t.Fatal(err)
			}
			rig.ids[mi.ImmutableID] = name
		}
		fmt.Fprintf(&chYAML, `  - name: %s
    mailbox: {type: shared, address: %s}
    folder: Inbox/%s
    poll_interval: %s
    after_import: delete
    webhook: helpdesk
`, name, rig.mailbox[name], name, foPoll)
	}
	rig.held, rig.unhold = make(chan struct{}), make(chan struct{})
	rig.graph = httptest.NewServer(http.HandlerFunc(rig.holdProxy))
	t.Cleanup(rig.graph.Close)
	t.Cleanup(func() {
		if rig.holdArmed.Load() {
			close(rig.unhold)
		}
	})
	rig.secret, _ = webhooks.GenerateSecret()
	rig.recv = httptest.NewServer(http.HandlerFunc(rig.receive))
	t.Cleanup(rig.recv.Close)
	dir := t.TempDir()
	for _, d := range rig.daemons {
		d.secrets = rigSecrets(sim, rig.secret)
		d.writeConfig(filepath.Join(dir, d.name+".yaml"), filepath.Join(dir, "data"), rigConfig{
			publicURL: rig.daemons[0].public, state: fmt.Sprintf("{database: '${FO_DATABASE}', lease_ttl: %s}", foLeaseTTL),
			log: "info", sim: sim, graphURL: rig.graph.URL,
			webhooks: helpdeskHook(rig.recv.URL, time.Second, "[25ms, 100ms]", 100000), channels: chYAML.String()})
	}
	return rig
}

// armHold makes the next move of a message of d's channels (in owners)
// wait for unhold before its answer is written.
func (rig *foRig) armHold(owners map[string]store.LeaseInfo, d *daemonProc) {
	rig.holdChannels = map[string]bool{}
	for ch, l := range owners {
		if l.Owner == d.instance {
			rig.holdChannels[ch] = true
		}
	}
	rig.holdArmed.Store(true)
}

// holdProxy forwards Graph requests to the simulator, holding one answer
// when armed (see armHold).
func (rig *foRig) holdProxy(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, rig.sim.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	// Paging and delta links name the host Graph was asked at.
	out = bytes.ReplaceAll(out, []byte(rig.sim.URL), []byte(rig.graph.URL))
	resp.Header.Del("Content-Length")
	if rig.holdArmed.Load() && rig.movesHeld(r.URL.Path, body) &&
		rig.holdArmed.CompareAndSwap(true, false) {
		close(rig.held)
		<-rig.unhold
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// movesHeld reports whether a request (a $batch, or a single move) moves
// a message of holdChannels.
func (rig *foRig) movesHeld(path string, body []byte) bool {
	if !strings.HasSuffix(path, "/move") && !bytes.Contains(body, []byte("/move")) {
		return false
	}
	text := append([]byte(path), body...)
	for imm, ch := range rig.ids {
		if rig.holdChannels[ch] && (bytes.Contains(text, []byte(imm)) || bytes.Contains(text, []byte(url.PathEscape(imm)))) {
			return true
		}
	}
	return false
}

func (rig *foRig) ping() {
	select {
	case rig.progress <- struct{}{}:
	default:
	}
}

// onMove is the simulator's OnMove (under the sim's lock).
func (rig *foRig) onMove(ev m365sim.MoveEvent) {
	seq := rig.seq.Add(1)
	rig.mu.Lock()
	if _, ok := rig.ids[ev.ImmutableID]; ok {
		if _, seen := rig.moved[ev.ImmutableID]; !seen {
			rig.moved[ev.ImmutableID] = seq
		}
	}
	rig.mu.Unlock()
	rig.ping()
}

// receive acknowledges channel events at once and a mail event when it can
// take a token (else it holds the request until the sender gives up).
func (rig *foRig) receive(w http.ResponseWriter, r *http.Request) {
	ev, _, id, ok := readHook(rig.t, w, r, rig.secret)
	if !ok {
		return
	}
	if !strings.HasPrefix(ev.Type, "mail.") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rig.mu.Lock()
	_, seen := rig.acked[id]
	rig.mu.Unlock()
	took := false
	if !seen && !rig.freePass(id) { // a repeat of an acknowledged event costs no token
		select {
		case <-rig.tokens:
			took = true
		case <-r.Context().Done():
			return
		}
	}
	seq := rig.seq.Add(1)
	rig.mu.Lock()
	_, dup := rig.acked[id]
	acked := !dup && r.Context().Err() == nil
	if took && !acked {
		// Not acknowledged (the daemon gave up on this request just as the
		// token came, or another request acknowledged it first): the token
		// is still owed. Losing it starved the import of acknowledgements
		// (a CI run waited 2 minutes for a move that never came).
		rig.tokens <- struct{}{}
	}
	if acked {
		rig.acked[id] = seq
		known := false
		for imm, ch := range rig.ids {
			if webhooks.EventID(killTenant, rig.mailbox[ch], imm) == id {
				known = true
				break
			}
		}
		if !known {
			rig.strange = append(rig.strange, id)
		}
	}
	rig.mu.Unlock()
	rig.ping()
	w.WriteHeader(http.StatusNoContent)
}

// freePass reports whether id is an event of a held channel while a hold
// is armed: it is acknowledged without a token. Without it the other
// daemons could take every token released for the hold: on an ordered
// endpoint the paused-to-be daemon's claimed head rows block its channels
// for them, so they deliver only their own channels' rows, quickly, while
// the held channels' owner retries once a second (a CI run waited 2
// minutes for a move that never came).
func (rig *foRig) freePass(id string) bool {
	if !rig.holdArmed.Load() {
		return false
	}
	rig.mu.Lock()
	defer rig.mu.Unlock()
	for imm, ch := range rig.ids {
		if rig.holdChannels[ch] && webhooks.EventID(killTenant, rig.mailbox[ch], imm) == id {
			return true
		}
	}
	return false
}

func (rig *foRig) release(n int) {
	for range n {
		select {
		case rig.tokens <- struct{}{}:
		default:
			return
		}
	}
}

// start runs a daemon on the rig's database (under its name, whose write
// it was, for the audit) and waits until it is ready.
func (rig *foRig) start(d *daemonProc) {
	d.env = []string{"FO_DATABASE=" + rig.dsn + "&application_name=daemon_" + d.name}
	d.start()
}

func (rig *foRig) kill(d *daemonProc) { d.kill() }

// connectAll signs every channel in, starting each consent on one daemon
// and landing its callback on the next one: the OAuth state and PKCE
// verifier are in the database, so any replica completes it.
func (rig *foRig) connectAll() {
	for i, ch := range rig.channels {
		rig.daemons[i%3].consent(ch, rig.daemons[(i+1)%3])
	}
}

// leases reads the lease table through a store of the test's own.
func (rig *foRig) leases() map[string]store.LeaseInfo {
	rig.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenPostgres(ctx, rig.dsn)
	if err != nil {
		rig.t.Fatal(err)
	}
	defer db.Close()
	ls, err := db.Leases(ctx)
	if err != nil {
		rig.t.Fatal(err)
	}
	out := map[string]store.LeaseInfo{}
	for _, l := range ls {
		out[l.Channel] = l
	}
	return out
}

// waitOwners waits until every channel has a live lease and ok accepts the
// table. The lease table is the daemons' own signal of who owns what; it
// is read every 50 ms, a pace far under the lease TTL being measured.
func (rig *foRig) waitOwners(ok func(map[string]store.LeaseInfo) bool) map[string]store.LeaseInfo {
	rig.t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // safety net
	for {
		ls := rig.leases()
		all := len(ls) == len(rig.channels)
		for _, l := range ls {
			all = all && l.Live
		}
		if all && ok(ls) {
			return ls
		}
		if time.Now().After(deadline) {
			rig.t.Fatalf("channels never all owned (%+v)\n%s", ls, rig.tails())
		}
		time.Sleep(50 * time.Millisecond) // pacing: the table lives in another process's database
	}
}

// daemonOwning is a running daemon that owns at least one channel.
func (rig *foRig) daemonOwning(ls map[string]store.LeaseInfo) *daemonProc {
	for _, l := range ls {
		for _, d := range rig.daemons {
			if d.cmd != nil && rig.ownerName(l.Owner) == d.name {
				return d
			}
		}
	}
	rig.t.Fatalf("no running daemon owns a channel: %+v", ls)
	return nil
}

// ownerName maps a lease owner (a daemon's instance id) to the rig's name.
func (rig *foRig) ownerName(id string) string {
	for _, d := range rig.daemons {
		if d.instance == id {
			return d.name
		}
	}
	return "?"
}

// waitTakeover waits until every channel gone owned by victim in before
// has another, live owner, and checks each takeover came within one poll
// of the victim's lease running out (both times by the database's clock).
func (rig *foRig) waitTakeover(before map[string]store.LeaseInfo, victim *daemonProc) map[string]store.LeaseInfo {
	t := rig.t
	t.Helper()
	vid := victim.instance
	after := rig.waitOwners(func(ls map[string]store.LeaseInfo) bool {
		for ch, l := range ls {
			if before[ch].Owner == vid && l.Owner == vid {
				return false
			}
		}
		return true
	})
	for ch, old := range before {
		if old.Owner != vid {
			continue
		}
		nw := after[ch]
		if nw.Token <= old.Token {
			t.Errorf("channel %s: token %d after the takeover, was %d: a new owner must raise it", ch, nw.Token, old.Token)
		}
		// The victim's last renewal set old.Expires at most one TTL ahead;
		// it may have renewed once more after this snapshot.
		lapse := nw.Acquired.Sub(old.Expires.Add(foLeaseTTL / 3))
		if lapse > foPoll {
			t.Errorf("channel %s: taken over %s after %s's lease ran out, want within one poll (%s)", ch, lapse, victim.name, foPoll)
		}
	}
	return after
}

// waitFor waits for the receiver's or the simulator's next progress until
// cond holds.
func (rig *foRig) waitFor(what string, cond func() bool) {
	rig.t.Helper()
	deadline := time.After(3 * time.Minute) // safety net
	for !cond() {
		select {
		case <-rig.progress:
		case <-deadline:
			rig.t.Fatalf("never reached: %s\n%s", what, rig.tails())
		}
	}
}

func (rig *foRig) waitAcked(n int) {
	rig.waitFor(fmt.Sprintf("%d mail events acknowledged", n), func() bool {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		return len(rig.acked) >= n
	})
}

func (rig *foRig) waitMoved(n int) {
	rig.waitFor(fmt.Sprintf("%d messages moved", n), func() bool {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		return len(rig.moved) >= n
	})
}

// checkFinal: one event id per message, every message acknowledged before
// it moved, the outbox empty of mail, and the paused daemon fenced off.
func (rig *foRig) checkFinal(beforePause map[string]store.LeaseInfo, paused *daemonProc) {
	t := rig.t
	t.Helper()
	rig.mu.Lock()
	if len(rig.strange) > 0 {
		t.Errorf("%d mail events under an id that is no message's derived id (a second event id), e.g. %s", len(rig.strange), rig.strange[0])
	}
	if got, want := len(rig.acked), len(rig.ids); got != want {
		t.Errorf("%d mail event ids acknowledged, want one per message: %d", got, want)
	}
	for imm, ch := range rig.ids {
		ack, ok := rig.acked[webhooks.EventID(killTenant, rig.mailbox[ch], imm)]
		mv, moved := rig.moved[imm]
		switch {
		case !moved:
			t.Errorf("message %s never moved (lost)", imm)
		case !ok || ack > mv:
			t.Errorf("message %s moved at #%d before its event's first 2xx (#%d, acked %v)", imm, mv, ack, ok)
		}
	}
	rig.mu.Unlock()
	for _, ch := range rig.channels {
		if n := len(rig.sim.Sim.Messages(rig.mailbox[ch], "Inbox/"+ch)); n != 0 {
			t.Errorf("channel %s: %d messages left in the folder", ch, n)
		}
	}
	// Fencing: the paused daemon, continued, was told its leases were lost
	// and none of its writes for those channels committed.
	lines := strings.Split(paused.out.String(), "\n")
	for ch, l := range beforePause {
		if l.Owner != paused.instance {
			continue
		}
		found := false
		for _, line := range lines {
			found = found || strings.Contains(line, "channel lease lost; stopping the channel's work") && strings.Contains(line, "channel="+ch+" ")
		}
		if !found {
			t.Errorf("daemon %s was paused past its lease of %s but never found it lost when continued", paused.name, ch)
		}
	}
	if t.Failed() {
		t.Logf("daemon output:\n%s", rig.tails())
	}
}

// checkClusterView: the admin API of a live daemon shows the whole
// cluster, as the database has it: both live members, every channel owned
// by one of them.
func (rig *foRig) checkClusterView(d *daemonProc) {
	t := rig.t
	t.Helper()
	// A lease of foLeaseTTL is renewed by its owner's loop; on a loaded
	// machine one view can catch a renewal late (an owner's lease a moment
	// expired, taken over next poll). What must hold is that the view gets
	// there, so it is read again until it does; a minute (30 TTLs) is the
	// safety net.
	deadline := time.Now().Add(time.Minute)
	for {
		problems := rig.clusterViewProblems(d)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			return
		}
		time.Sleep(100 * time.Millisecond) // polling the admin API: the view has no push
	}
}

// clusterViewProblems reads /api/cluster of d and says what it gets wrong.
func (rig *foRig) clusterViewProblems(d *daemonProc) []string {
	t := rig.t
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.admin+"/api/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+killAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Shared  bool
		Members []struct{ ID string }
		Leases  []struct {
			Channel, Owner string
			Live           bool
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/cluster: %d %v", resp.StatusCode, err)
	}
	live := map[string]bool{}
	for _, d := range rig.daemons {
		if d.cmd != nil {
			live[d.instance] = true
		}
	}
	var members []string
	for _, m := range v.Members {
		if live[m.ID] {
			members = append(members, m.ID)
		}
	}
	var problems []string
	if !v.Shared || len(members) != len(live) {
		problems = append(problems, fmt.Sprintf("cluster view: shared %v, members %+v, want the %d live daemons", v.Shared, v.Members, len(live)))
	}
	if len(v.Leases) != len(rig.channels) {
		problems = append(problems, fmt.Sprintf("cluster view: %d leases, want %d", len(v.Leases), len(rig.channels)))
	}
	for _, l := range v.Leases {
		if !l.Live || !live[l.Owner] {
			problems = append(problems, fmt.Sprintf("cluster view: channel %s owned by %s (live %v), want a live daemon", l.Channel, l.Owner, l.Live))
		}
	}
	return problems
}

// auditSQL records, from inside each write's transaction, every write of a
// channel's sync state that must be fenced — a ledger row added or done, a
// mail event queued, a cursor moved — with the writing daemon (its
// connection's application_name) and the channel's lease as that
// transaction sees it. Channel notices, deliveries' outcomes and the
// acknowledgement's ledger update are any daemon's to write, and are not
// audited.
const auditSQL = `
CREATE TABLE fo_audit (tbl TEXT, channel TEXT, writer TEXT, owner TEXT, live BOOLEAN, at TIMESTAMPTZ);
CREATE FUNCTION fo_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO fo_audit SELECT TG_TABLE_NAME, NEW.channel, current_setting('application_name'),
		l.owner, l.expires_at > now(), clock_timestamp()
		FROM (SELECT 1) one LEFT JOIN channel_leases l ON l.channel = NEW.channel;
	RETURN NEW;
END $$;
CREATE TRIGGER fo_ledger_insert AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION fo_audit();
CREATE TRIGGER fo_ledger_done AFTER UPDATE ON ledger FOR EACH ROW
	WHEN (NEW.state = 'done' AND OLD.state IS DISTINCT FROM 'done') EXECUTE FUNCTION fo_audit();
CREATE TRIGGER fo_outbox_mail AFTER INSERT ON outbox FOR EACH ROW
	WHEN (NEW.type LIKE 'mail.%') EXECUTE FUNCTION fo_audit();
CREATE TRIGGER fo_cursor AFTER UPDATE ON sync_state FOR EACH ROW
	WHEN (NEW.delta_link IS DISTINCT FROM OLD.delta_link) EXECUTE FUNCTION fo_audit();
`

// audit installs auditSQL in the daemons' schema (migrated by now).
func (rig *foRig) audit() {
	rig.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenPostgres(ctx, rig.dsn)
	if err != nil {
		rig.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Reader().ExecContext(ctx, auditSQL); err != nil {
		rig.t.Fatalf("install the write audit: %v", err)
	}
}

// checkAudit: every audited write was made by the channel's owner under an
// unexpired lease. A daemon that wrote after its lease had run out or
// passed to another (the paused one, continued) would show here: fencing.
func (rig *foRig) checkAudit() {
	t := rig.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenPostgres(ctx, rig.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Reader().QueryContext(ctx, `SELECT tbl, channel, writer, coalesce(owner, ''), coalesce(live, false), at FROM fo_audit ORDER BY at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n, bad := 0, 0
	for rows.Next() {
		var tbl, ch, writer, owner string
		var live bool
		var at time.Time
		if err := rows.Scan(&tbl, &ch, &writer, &owner, &live, &at); err != nil {
			t.Fatal(err)
		}
		n++
		if "daemon_"+rig.ownerName(owner) != writer || !live {
			if bad++; bad <= 5 {
				t.Errorf("%s write of channel %s by %s at %s while the lease was %s's (live %v): an unfenced write",
					tbl, ch, writer, at.Format(time.RFC3339Nano), rig.ownerName(owner), live)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if bad > 0 || n < 2*len(rig.ids) {
		t.Errorf("%d of %d audited channel writes unfenced; want 0 of at least %d", bad, n, 2*len(rig.ids))
	}
}

func (rig *foRig) tails() string {
	var b strings.Builder
	for _, d := range rig.daemons {
		fmt.Fprintf(&b, "--- daemon %s\n%s\n", d.name, d.tail())
	}
	return b.String()
}
