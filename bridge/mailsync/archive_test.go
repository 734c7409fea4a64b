package mailsync

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

func TestDecideArchive(t *testing.T) {
	now := time.Date(2026, 11, 26, 20, 31, 7, 123456789, time.UTC)
	before := time.Date(2026, 11, 1, 9, 30, 0, 500, time.UTC)
	tests := []struct {
		name       string
		archive    config.Archive
		count      int
		wantMode   string
		wantCutoff time.Time
		wantErr    error
	}{
		{"auto, folder holds mail", config.Archive{Mode: "auto"}, 3, store.ArchiveDecidedOn, now.Truncate(time.Second), nil},
		{"auto, empty folder", config.Archive{Mode: "auto"}, 0, store.ArchiveDecidedOff, time.Time{}, nil},
		{"unset means auto", config.Archive{}, 1, store.ArchiveDecidedOn, now.Truncate(time.Second), nil},
		{"off", config.Archive{Mode: "off"}, 10, store.ArchiveDecidedOff, time.Time{}, nil},
		{"on with cut-off", config.Archive{Mode: "on", Before: &before}, 0, store.ArchiveDecidedOn, before, nil},
		{"on without cut-off", config.Archive{Mode: "on"}, 5, "", time.Time{}, ErrArchiveCutoffMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecideArchive(tt.archive, tt.count, now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Mode != tt.wantMode || !got.Cutoff.Equal(tt.wantCutoff) {
				t.Errorf("got mode %q cutoff %v, want %q %v", got.Mode, got.Cutoff, tt.wantMode, tt.wantCutoff)
			}
			if err == nil && got.Reason == "" {
				t.Error("no reason recorded")
			}
		})
	}
	future := now.Add(time.Hour)
	if d, _ := DecideArchive(config.Archive{Mode: "on", Before: &future}, 1, now); !strings.Contains(d.Reason, "future") {
		t.Errorf("a cut-off in the future: reason %q does not warn", d.Reason)
	}
	if _, err := DecideArchive(config.Archive{Mode: "sometimes"}, 1, now); err == nil {
		t.Error("unknown mode: want an error")
	}
}

func TestArchivePolicyAtFullPrecision(t *testing.T) {
	cut := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := event.ArchivePolicy{On: true, Cutoff: cut, State: "closed"}
	tests := []struct {
		name     string
		received time.Time
		want     bool
	}{
		{"a second before", cut.Add(-time.Second), true},
		{"a nanosecond before", cut.Add(-1), true},
		{"exactly at the cut-off", cut, false},
		{"same day, later", cut.Add(time.Hour), false},
		{"no received time", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Archived(tt.received); got != tt.want {
				t.Errorf("Archived(%v) = %v, want %v", tt.received, got, tt.want)
			}
		})
	}
	if (event.ArchivePolicy{Cutoff: cut}).Archived(cut.Add(-time.Hour)) {
		t.Error("a policy that is off archived a message")
	}
	got := policyFrom(store.SyncState{ArchiveMode: "on", ArchiveCutoff: cut}, config.Archive{})
	if !got.On || got.State != "closed" || !got.Cutoff.Equal(cut) {
		t.Errorf("policyFrom = %+v, want on, closed, the cut-off", got)
	}
}
