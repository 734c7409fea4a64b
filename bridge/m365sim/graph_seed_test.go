package m365sim

import (
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"10240", 10240, true}, {"10KiB", 10240, true}, {"1MiB", 1 << 20, true}, {"100KB", 100000, true},
		{"1.5MiB", 3 << 19, true}, {"2 MB", 2000000, true}, {"lots", 0, false}, {"-1", 0, false},
	}
	for _, c := range cases {
		got, err := ParseByteSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestSeedFileMail(t *testing.T) {
	seed, err := LoadSeedFile("testdata/graph/seed-mail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Seed: 3})
	if _, err := s.Apply(seed); err != nil {
		t.Fatal(err)
	}
	mb := "agent@fabrikam.example"
	counts := map[string]int{"Inbox/Support": 6, "Inbox/Support/Tier2": 1, "Archive/2024": 1, "Inbox": 40}
	for folder, want := range counts {
		if got := len(s.Messages(mb, folder)); got != want {
			t.Errorf("%s: %d messages, want %d", folder, got, want)
		}
	}
	tier2 := s.Messages(mb, "Inbox/Support/Tier2")[0]
	if tier2.Subject != "Printer on floor 3 is jammed" || tier2.From != "pat@customer.example" || !tier2.Received.Equal(time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("inline message %+v", tier2)
	}
	if r := s.Messages(mb, "Archive/2024")[0]; !r.IsRead {
		t.Error("is_read ignored")
	}
}

func TestSeedFileErrors(t *testing.T) {
	s := New(Options{})
	mb := s.AddSharedMailbox("x@contoso.example", "X")
	cases := map[string]MailSeed{
		"missing eml dir":    {EMLDir: "testdata/does-not-exist"},
		"dir without eml":    {EMLDir: "testdata/graph/eml"},
		"percent over 100":   {Generate: &GenerateSpec{Count: 1, Attachments: []AttachmentMix{{Percent: 80}, {Percent: 30}}}},
		"until before from":  {Generate: &GenerateSpec{Count: 1, ReceivedFrom: time.Unix(100, 0), ReceivedUntil: time.Unix(50, 0)}},
		"bad inline address": {Messages: []NewMessage{{From: "not an address <"}}},
		"empty folder seg":   {Folders: []string{"Inbox//X"}},
	}
	for name, ms := range cases {
		t.Run(name, func(t *testing.T) {
			s.mu.Lock()
			err := s.seedMailLocked(mb, ms)
			s.mu.Unlock()
			if err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestGenerateDeterministicAndLazy(t *testing.T) {
	spec := GenerateSpec{Count: 30, Size: 1 << 10, Attachments: []AttachmentMix{{Percent: 20, Size: 64 << 10}},
		ReceivedFrom: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ReceivedUntil: time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)}
	run := func() (*graphFixture, []MessageInfo) {
		f := newGraphFixture(t, Options{Seed: 42})
		seedGenerated(t, f, "alice@contoso.example", spec)
		return f, f.sim.Messages("alice@contoso.example", "Inbox")
	}
	f1, a := run()
	f2, b := run()
	if len(a) != 30 {
		t.Fatalf("%d messages", len(a))
	}
	withAtt := 0
	for i := range a {
		if a[i].Subject != b[i].Subject || !a[i].Received.Equal(b[i].Received) || a[i].InternetMessageID != b[i].InternetMessageID {
			t.Fatalf("message %d differs between runs: %+v vs %+v", i, a[i], b[i])
		}
		if a[i].Received.Before(spec.ReceivedFrom) || a[i].Received.After(spec.ReceivedUntil) {
			t.Errorf("received %v outside the range", a[i].Received)
		}
		_, raw1 := f1.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(a[i].ID)+"/$value", f1.aliceTok, nil)
		_, raw2 := f2.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(b[i].ID)+"/$value", f2.aliceTok, nil)
		if string(raw1) != string(raw2) {
			t.Fatalf("message %d: $value differs between runs", i)
		}
		if len(raw1) > 64<<10 {
			withAtt++
		}
	}
	if withAtt < 2 || withAtt > 12 {
		t.Errorf("%d of 30 with a 64 KiB attachment at 20%%", withAtt)
	}
	// Stored messages keep no attachment bytes: content renders on demand.
	f1.sim.mu.Lock()
	for _, m := range f1.sim.mailboxes["alice@contoso.example"].data.messages {
		for _, at := range m.content.Attachments {
			if at.data != nil || at.lazy == nil {
				t.Errorf("generated attachment stores %d bytes", len(at.data))
			}
		}
	}
	f1.sim.mu.Unlock()
	// The parsed $value agrees with what Graph shows.
	for _, mi := range a {
		_, raw := f1.call(t, "GET", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"/$value", f1.aliceTok, nil)
		parsed, err := parseMIME(raw)
		if err != nil {
			t.Fatal(err)
		}
		m := f1.getJSON(t, "GET", "/v1.0/me/messages/"+url.PathEscape(mi.ID)+"?$expand=attachments", f1.aliceTok, nil, 200)
		h, _ := parsed.bodies()
		if m["subject"] != parsed.Subject || !strings.Contains(h, m["bodyPreview"].(string)[:40]) {
			t.Errorf("JSON and MIME disagree for %s", mi.Subject)
		}
		if atts := m["attachments"].([]any); len(atts) != len(parsed.Attachments) {
			t.Errorf("%d attachments in JSON, %d in MIME", len(atts), len(parsed.Attachments))
		} else if len(atts) == 1 && atts[0].(map[string]any)["size"] != float64(len(parsed.Attachments[0].bytes())) {
			t.Errorf("attachment size %v, MIME has %d", atts[0].(map[string]any)["size"], len(parsed.Attachments[0].bytes()))
		}
	}
}

// BenchmarkGenerateLargeMailbox seeds 10,000 messages, 10% with a 1 MiB
// attachment, and reports the heap they take (run with -bench Large).
func BenchmarkGenerateLargeMailbox(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(Options{Seed: 1})
		mb := s.AddSharedMailbox("big@contoso.example", "Big")
		s.mu.Lock()
		err := s.seedMailLocked(mb, MailSeed{Generate: &GenerateSpec{Count: 10000, Attachments: []AttachmentMix{{Percent: 10, Size: 1 << 20}}}})
		s.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMiB")
		runtime.KeepAlive(s)
	}
}

// TestSeedExampleMail: the repository's example seed fills the folder the
// sample bridge.yaml syncs.
func TestSeedExampleMail(t *testing.T) {
	seed, err := LoadSeedFile("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{})
	if _, err := s.Apply(seed); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Messages("support@contoso.com", "Inbox/Support")); got != 25 {
		t.Errorf("Inbox/Support holds %d messages, want 25", got)
	}
}
