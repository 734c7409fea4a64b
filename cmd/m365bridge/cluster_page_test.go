package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// TestStatusPageShowsCluster runs three daemons on one PostgreSQL database
// (the failover rig), connects two channels, and reads the HTML status page
// of one daemon: it must list every live daemon with its heartbeat age and,
// per channel, the owner, fencing token and liveness the lease table holds
// — rendered by the server, for a browser without JavaScript.
func TestStatusPageShowsCluster(t *testing.T) {
	rig := newFoRig(t, 2, 1)
	for _, d := range rig.daemons {
		rig.start(d)
	}
	rig.connectAll()
	rig.release(len(rig.channels))
	leases := rig.waitOwners(func(map[string]store.LeaseInfo) bool { return true })

	// Leases of 2 s are renewed by their owners' loops; under -race on a
	// loaded machine one read can catch a renewal a moment late (the row
	// shows "expired" until the next renewal). The page is read again until
	// every channel shows a live lease; a minute (30 TTLs) is the safety net.
	liveRow := func(ch string) *regexp.Regexp {
		return regexp.MustCompile(`<tr id="lease-` + ch + `"><td>` + ch + `</td><td class="mono">([^<]+)</td><td class="num">(\d+)</td>\s*<td><span class="badge ok">live</span></td>`)
	}
	var page string
	var status int
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequest(http.MethodGet, "http://"+rig.daemons[1].admin+"/", nil)
		req.Header.Set("Authorization", "Bearer "+killAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page, status = string(body), resp.StatusCode
		allLive := status == http.StatusOK
		for _, ch := range rig.channels {
			allLive = allLive && liveRow(ch).MatchString(page)
		}
		if allLive || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the page: it has no push
	}
	if status != http.StatusOK || !strings.Contains(page, `<h2 id="cluster">Cluster</h2>`) {
		t.Fatalf("GET / = %d, want 200 with a cluster section: %.2000s", status, page)
	}
	for _, d := range rig.daemons {
		row := regexp.MustCompile(`<tr id="member-` + regexp.QuoteMeta(d.instance) + `"><td class="mono">` +
			regexp.QuoteMeta(d.instance) + `</td><td class="mono">[^<]*</td><td>[^<]+</td><td class="num">(\d+\.\d) s</td></tr>`)
		if m := row.FindStringSubmatch(page); m == nil {
			t.Errorf("no member row for daemon %s (%s) with a heartbeat age", d.name, d.instance)
		}
	}
	for _, ch := range rig.channels {
		l, ok := leases[ch]
		if !ok {
			t.Fatalf("channel %s has no lease", ch)
		}
		// The token may only have risen since (a rebalance while the page
		// was read); the owner is one of the three either way.
		m := liveRow(ch).FindStringSubmatch(page)
		if m == nil {
			t.Errorf("no live lease row for channel %s", ch)
			continue
		}
		if rig.ownerName(m[1]) == "?" {
			t.Errorf("channel %s owned by %q on the page: no daemon of the rig", ch, m[1])
		}
		var tok int64
		fmt.Sscan(m[2], &tok)
		if m[1] == l.Owner && tok != l.Token || tok < l.Token {
			t.Errorf("channel %s: page shows token %d of %s, the table had %d of %s", ch, tok, m[1], l.Token, l.Owner)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
}
