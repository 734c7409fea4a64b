package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterImport: 200 mailboxes (a channel each) × 20 messages imported by three
// daemons (real `m365bridge serve` processes, the failover rig) on one
// PostgreSQL database, with the simulator and the receiver in the test
// process. It reports messages/s from the first consent to the last
// message moved after its 2xx, and PostgreSQL round trips per message:
// every round trip the daemons make to the server, counted on the wire by
// a proxy between them and PostgreSQL (each simple Query and each Sync of
// the extended protocol ends one round trip; the benchmark's own reads of
// the lease table are not counted). Heartbeats, lease renewals and
// rebalancing are part of the cost, as they are in production.
//
//	go test ./cmd/m365bridge -run '^$' -bench BenchmarkClusterImport -benchtime 1x -timeout 30m
//
// M365BRIDGE_BENCH_CHANNELS and M365BRIDGE_BENCH_PER_CHANNEL change the size.
func BenchmarkClusterImport(b *testing.B) {
	channels, per := benchEnvInt("M365BRIDGE_BENCH_CHANNELS", 200), benchEnvInt("M365BRIDGE_BENCH_PER_CHANNEL", 20)
	for b.Loop() {
		rig := newFoRigMailboxes(b, channels, per, true)
		proxy := newPGCountProxy(b, rig.dsn)
		ownDSN := rig.dsn
		rig.dsn = proxy.dsn // the daemons reach PostgreSQL through the counter
		for _, d := range rig.daemons {
			rig.start(d)
		}
		total := channels * per
		rig.release(total)
		before := proxy.roundTrips.Load()
		start := time.Now()
		rig.connectAll()
		rig.waitMoved(total)
		wall := time.Since(start)
		trips := proxy.roundTrips.Load() - before
		rig.dsn = ownDSN
		spread := map[string]int{}
		for _, l := range rig.leases() {
			spread[rig.ownerName(l.Owner)]++
		}
		rig.mu.Lock()
		acked := len(rig.acked)
		rig.mu.Unlock()
		if acked != total {
			b.Fatalf("%d mail events acknowledged, want %d", acked, total)
		}
		b.ReportMetric(float64(total)/wall.Seconds(), "msgs/s")
		b.ReportMetric(float64(trips)/float64(total), "pg-roundtrips/msg")
		b.Logf("%d mailboxes × %d messages over 3 daemons: %s, %.0f messages/s, %d PostgreSQL round trips (%.1f per message); channels per daemon %v",
			channels, per, wall.Round(time.Millisecond), float64(total)/wall.Seconds(), trips, float64(trips)/float64(total), spread)
		for _, d := range rig.daemons {
			rig.kill(d)
		}
	}
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// pgCountProxy forwards TCP connections to PostgreSQL and counts the round
// trips of the connections whose application_name starts with "daemon_"
// (the rig's daemons name themselves so).
type pgCountProxy struct {
	ln         net.Listener
	server     string // host:port of PostgreSQL
	dsn        string // rig.dsn with the proxy's address
	roundTrips atomic.Int64
	wg         sync.WaitGroup
}

func newPGCountProxy(tb testing.TB, dsn string) *pgCountProxy {
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	if u.Query().Get("sslmode") != "disable" {
		tb.Skip("the round-trip counter reads the wire protocol: it needs sslmode=disable in " + "M365BRIDGE_TEST_POSTGRES")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &pgCountProxy{ln: ln, server: u.Host}
	u.Host = ln.Addr().String()
	p.dsn = u.String()
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *pgCountProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.server)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(c, s); c.Close() }()
		go func() { p.clientToServer(c, s); s.Close() }()
	}
}

// clientToServer copies the frontend's messages to the server, counting
// 'Q' (simple query) and 'S' (Sync) messages of daemon connections. The
// first messages carry no type byte: an SSLRequest or GSSENCRequest (then
// the startup message), and the startup message with application_name.
func (p *pgCountProxy) clientToServer(c, s net.Conn) {
	r := bufio.NewReader(c)
	counted := false
	for startup := true; startup; {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 8 || n > 1<<20 {
			return
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if _, err := s.Write(append(hdr[:], body...)); err != nil {
			return
		}
		switch binary.BigEndian.Uint32(hdr[4:]) {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest: the server says no (sslmode=disable)
		default:
			startup = false
			params := bytes.Split(body, []byte{0})
			for i := 0; i+1 < len(params); i += 2 {
				if string(params[i]) == "application_name" && strings.HasPrefix(string(params[i+1]), "daemon_") {
					counted = true
				}
			}
		}
	}
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		if counted && (hdr[0] == 'Q' || hdr[0] == 'S') {
			p.roundTrips.Add(1)
		}
		if _, err := s.Write(hdr[:]); err != nil {
			return
		}
		if _, err := io.CopyN(s, r, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
			return
		}
	}
}
