package mailsync

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// corpusDir holds real messages from mail parsers' test data and the
// expectations Python's email package derived from their raw bytes (see
// its README.md and expect.py).
const corpusDir = "../m365sim/testdata/corpus"

// corpusExpectation is one entry of expectations.json; a nil field is not
// comparable (its *_why says why).
type corpusExpectation struct {
	File        string   `json:"file"`
	Subject     *string  `json:"subject"`
	From        *string  `json:"from"`
	To          []string `json:"to"`
	ToWhy       *string  `json:"to_why"`
	Attachments []struct {
		Kind   string  `json:"kind"`
		Name   *string `json:"name"`
		SHA256 *string `json:"sha256"` // nil: bytes not recorded (message/delivery-status), counted only
	} `json:"attachments"`
	AttachmentsWhy *string  `json:"attachments_why"`
	TextLines      []string `json:"text_lines"`
	TextWhy        *string  `json:"text_why"`
}

// corpusScore counts one field's comparable messages and matches.
type corpusScore struct {
	name                string
	comparable, matched int
	misses              []string
}

func (s *corpusScore) check(file string, ok bool, detail string) {
	s.comparable++
	if ok {
		s.matched++
		return
	}
	s.misses = append(s.misses, file+": "+detail)
}

func (s *corpusScore) percent() float64 {
	if s.comparable == 0 {
		return 100
	}
	return 100 * float64(s.matched) / float64(s.comparable)
}

// TestCorpusThroughRunner seeds every message of the corpus into the
// simulator, syncs them through the real runner, and compares each event
// with what an independent parser read from the raw MIME: every message
// becomes an event; at least 98% of the comparable subjects, senders,
// recipients and attachments (names and sha256) match; every comparable
// text body matches line for line.
func TestCorpusThroughRunner(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(corpusDir, "expectations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []corpusExpectation
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("expectations.json: %v", err)
	}
	if len(want) < 150 {
		t.Fatalf("the corpus has %d messages, want at least 150", len(want))
	}

	h := newHarness(t, m365sim.Options{})
	const folder = "Inbox/Corpus"
	ids := make(map[string]string, len(want))      // event id -> file
	graphIDs := make(map[string]string, len(want)) // file -> immutable id
	for _, w := range want {
		raw, err := os.ReadFile(filepath.Join(corpusDir, w.File))
		if err != nil {
			t.Fatal(err)
		}
		mi, err := h.sim.Sim.InjectMail(simSupport, folder, raw)
		if err != nil {
			t.Errorf("%s: the simulator refused it (Exchange accepts any message): %v", w.File, err)
			continue
		}
		ids[h.eventID(simSupport, mi.ImmutableID)] = w.File
		graphIDs[w.File] = mi.ImmutableID
	}

	ch := testChannel("corpus", config.MailboxShared, simSupport, folder)
	ch.Archive.Mode = config.ArchiveOff
	ch.MaxAttachmentBytes = 16 << 20 // every attachment inline, to hash it
	r := h.runner(ch)
	st := h.syncOnce(r)
	t.Logf("sync: %+v", st)

	rows, err := h.db.Outbox().List(context.Background(), deliverFilterAll())
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]webhooks.MailData{} // file -> event
	for _, row := range rows {
		var md webhooks.MailData
		decodeEvent(t, row.Body, &md)
		if f, ok := ids[row.EventID]; ok {
			events[f] = md
		}
	}

	present := &corpusScore{name: "event"}
	subject := &corpusScore{name: "subject"}
	from := &corpusScore{name: "from"}
	to := &corpusScore{name: "to"}
	atts := &corpusScore{name: "attachments"}
	text := &corpusScore{name: "text body"}
	for _, w := range want {
		ev, ok := events[w.File]
		reason := "no event"
		if !ok {
			if e, err := h.db.LedgerEntryByID(context.Background(), "corpus", graphIDs[w.File]); err == nil {
				reason = "no event: ledger " + e.State + ": " + e.Reason
			}
		}
		present.check(w.File, ok, reason)
		if !ok {
			continue
		}
		a := ev.Article
		if w.Subject != nil {
			got := strings.Join(strings.Fields(a.Subject), " ")
			subject.check(w.File, got == *w.Subject, "got "+quote(got)+", want "+quote(*w.Subject))
		}
		if w.From != nil {
			got := strings.ToLower(a.From.Address)
			from.check(w.File, got == *w.From, "got "+quote(got)+", want "+quote(*w.From))
		}
		if w.ToWhy == nil {
			var got []string
			for _, x := range a.To {
				got = append(got, strings.ToLower(x.Address))
			}
			to.check(w.File, slices.Equal(got, w.To), "got "+strings.Join(got, ",")+", want "+strings.Join(w.To, ","))
		}
		if w.AttachmentsWhy == nil {
			ok, detail := compareAttachments(a.Attachments, w)
			atts.check(w.File, ok, detail)
		}
		if w.TextWhy == nil {
			got := bodyLines(a.BodyText)
			ok, detail := true, ""
			if !slices.Equal(got, w.TextLines) {
				ok, detail = false, firstLineDiff(got, w.TextLines)
			}
			text.check(w.File, ok, detail)
		}
	}

	for _, s := range []*corpusScore{present, subject, from, to, atts, text} {
		t.Logf("%-12s %d/%d comparable match (%.1f%%)", s.name, s.matched, s.comparable, s.percent())
		for _, m := range s.misses {
			t.Logf("  %s mismatch: %s", s.name, m)
		}
	}
	need := map[*corpusScore]float64{present: 100, subject: 98, from: 98, to: 98, atts: 98, text: 100}
	for _, s := range []*corpusScore{present, subject, from, to, atts, text} {
		if s.percent() < need[s] {
			t.Errorf("%s: %d/%d comparable messages match (%.1f%%), want at least %.0f%% (mismatches above)",
				s.name, s.matched, s.comparable, s.percent(), need[s])
		}
	}
}

// compareAttachments matches an event's attachments with the expected
// ones: the same number of attached messages, and the same file
// attachments by sha256, with the expected name where the MIME named one.
func compareAttachments(got []webhooks.Attachment, w corpusExpectation) (bool, string) {
	wantItems, gotItems := 0, 0
	wantFiles := map[string][]string{} // sha256 -> names ("" when unnamed)
	nFiles, unhashed := 0, 0
	for _, x := range w.Attachments {
		if x.Kind == "item" {
			wantItems++
			continue
		}
		name := ""
		if x.Name != nil {
			name = *x.Name
		}
		nFiles++
		if x.SHA256 == nil {
			unhashed++
			continue
		}
		wantFiles[*x.SHA256] = append(wantFiles[*x.SHA256], name)
	}
	var problems []string
	gotFiles := 0
	for _, x := range got {
		if strings.EqualFold(x.ContentType, "message/rfc822") || strings.HasPrefix(x.Reason, "attached Outlook item") {
			gotItems++
			continue
		}
		gotFiles++
		if !x.Included {
			problems = append(problems, x.Filename+" not included: "+x.Reason)
			continue
		}
		data, err := base64.StdEncoding.DecodeString(x.ContentBase64)
		if err != nil {
			problems = append(problems, x.Filename+": bad base64")
			continue
		}
		sum := sha256.Sum256(data)
		key := hex.EncodeToString(sum[:])
		names, ok := wantFiles[key]
		if (!ok || len(names) == 0) && unhashed > 0 {
			unhashed--
			continue
		}
		if !ok || len(names) == 0 {
			problems = append(problems, x.Filename+" ("+key[:12]+", "+x.ContentType+"): not expected")
			continue
		}
		if names[0] != "" && names[0] != x.Filename && cleanedName(names[0]) != x.Filename {
			problems = append(problems, "name "+quote(x.Filename)+", want "+quote(names[0]))
		}
		wantFiles[key] = names[1:]
	}
	if gotItems != wantItems {
		problems = append(problems, "attached messages: got "+itoa(gotItems)+", want "+itoa(wantItems))
	}
	if gotFiles != nFiles {
		problems = append(problems, "file attachments: got "+itoa(gotFiles)+", want "+itoa(nFiles))
	}
	return len(problems) == 0, strings.Join(problems, "; ")
}

// cleanedName is a file name as the README says the bridge cleans it for
// receivers: path separators and control characters become "_",
// surrounding spaces and dots go.
func cleanedName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	return strings.Trim(s, " .")
}

// bodyLines is expect.py's body_lines: line ends normalised, trailing
// blank lines dropped.
func bodyLines(t string) []string {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(t, "\r\n", "\n"), "\r", "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil
	}
	return lines
}

func firstLineDiff(got, want []string) string {
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w || i >= len(got) || i >= len(want) {
			return "line " + itoa(i+1) + ": got " + quote(g) + ", want " + quote(w) + " (" + itoa(len(got)) + " vs " + itoa(len(want)) + " lines)"
		}
	}
	return ""
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
