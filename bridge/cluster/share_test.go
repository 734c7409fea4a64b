package cluster

import (
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// TestShareWakesOnChangeOnly: Set wakes Assigned's waiters when the share
// changes and not when the same share is computed again; Hold and Held
// keep the leases by channel.
func TestShareWakesOnChangeOnly(t *testing.T) {
	s := New("a", time.Second)
	mine, changed := s.Assigned("ch0")
	if mine {
		t.Fatal("ch0 assigned before any assignment")
	}
	s.Set(map[string]bool{"ch0": true})
	select {
	case <-changed:
	default:
		t.Fatal("a new assignment did not wake the waiter")
	}
	mine, changed = s.Assigned("ch0")
	if !mine {
		t.Fatal("ch0 not assigned after Set")
	}
	s.Set(map[string]bool{"ch0": true})
	select {
	case <-changed:
		t.Fatal("the same assignment woke the waiter")
	default:
	}
	s.Set(map[string]bool{"ch1": true})
	<-changed // closed: the share changed
	l := store.Lease{Channel: "ch1", Owner: "a", Token: 3}
	s.Hold(l, true)
	if got, ok := s.Held("ch1"); !ok || got != l {
		t.Errorf("Held(ch1) = %+v, %v; want %+v", got, ok, l)
	}
	s.Hold(l, false)
	if _, ok := s.Held("ch1"); ok {
		t.Error("a released lease is still held")
	}
}
