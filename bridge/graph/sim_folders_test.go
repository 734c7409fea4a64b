package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

func TestSimResolveFolder(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	for _, p := range []string{"Inbox/Support/Tier2", "Inbox/Sales", "Projects/2026", "Inbox/Dup", "Inbox/Dup "} {
		if _, err := srv.Sim.CreateFolder(support, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 120 {
		if _, err := srv.Sim.CreateFolder(support, fmt.Sprintf("Inbox/Many/Child-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mc := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	ctx := context.Background()

	tests := []struct {
		in, wantPath, simPath string
	}{
		{"", "Inbox", "Inbox"},
		{"Inbox/Support", "Inbox/Support", "Inbox/Support"},
		{"inbox/SUPPORT/tier2", "Inbox/Support/Tier2", "Inbox/Support/Tier2"},
		{"/Inbox/ Sales /", "Inbox/Sales", "Inbox/Sales"},
		{"Deleted Items", "Deleted Items", "Deleted Items"},
		{"deleteditems", "Deleted Items", "Deleted Items"},
		{"projects/2026", "Projects/2026", "Projects/2026"},
		{"Inbox/Many/child-115", "Inbox/Many/Child-115", "Inbox/Many/Child-115"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := mc.ResolveFolder(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			wantID, err := srv.Sim.FolderID(support, tt.simPath)
			if err != nil {
				t.Fatal(err)
			}
			if f.ID != wantID || f.Path != tt.wantPath {
				t.Errorf("got %s %q, want %s %q", f.ID, f.Path, wantID, tt.wantPath)
			}
			again, err := mc.GetFolder(ctx, f.ID)
			if err != nil || again.ID != f.ID {
				t.Errorf("GetFolder(%s) = %+v, %v", f.ID, again, err)
			}
		})
	}

	t.Run("ambiguous", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/dup")
		var fe *FolderError
		if !errors.Is(err, ErrFolderAmbiguous) || !errors.As(err, &fe) || len(fe.Matches) != 2 {
			t.Fatalf("err = %v, want an ambiguity naming two folders", err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"Dup"`) || !strings.Contains(msg, `"Dup "`) {
			t.Errorf("message %q does not name both folders", msg)
		}
	})
	t.Run("missing lists what exists", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/Suport")
		var fe *FolderError
		if !errors.Is(err, ErrFolderNotFound) || !errors.As(err, &fe) {
			t.Fatalf("err = %v, want a FolderError not found", err)
		}
		if fe.Segment != "Suport" || fe.Parent != "Inbox" {
			t.Errorf("segment %q parent %q", fe.Segment, fe.Parent)
		}
		for _, name := range []string{"Support", "Sales", "Many"} {
			if !slices.Contains(fe.Existing, name) {
				t.Errorf("Existing %v lacks %q", fe.Existing, name)
			}
		}
		if !strings.Contains(err.Error(), `"Support"`) {
			t.Errorf("message %q does not list the existing names", err)
		}
	})
	t.Run("missing top level", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Nowhere/Support")
		var fe *FolderError
		if !errors.As(err, &fe) || fe.Parent != "" || !slices.Contains(fe.Existing, "Projects") {
			t.Errorf("err = %v, want the top level listed", err)
		}
	})
	t.Run("leaf has no children", func(t *testing.T) {
		_, err := mc.ResolveFolder(ctx, "Inbox/Support/Tier2/Deeper")
		if !errors.Is(err, ErrFolderNotFound) || !strings.Contains(err.Error(), "no folders there") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("paging over 100 children", func(t *testing.T) {
		children, err := mc.ListChildFolders(ctx, mustFolderID(t, srv, support, "Inbox/Many"))
		if err != nil {
			t.Fatal(err)
		}
		if len(children) != 120 {
			t.Errorf("%d children, want 120", len(children))
		}
	})
	t.Run("folder gone", func(t *testing.T) {
		_, err := mc.GetFolder(ctx, "AAMkNoSuchFolder")
		if !errors.Is(err, ErrFolderNotFound) {
			t.Errorf("err = %v, want ErrFolderNotFound", err)
		}
	})
}

func mustFolderID(t *testing.T, srv *m365sim.Server, mailbox, path string) string {
	t.Helper()
	id, err := srv.Sim.FolderID(mailbox, path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
