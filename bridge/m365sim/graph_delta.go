package m365sim

// Delta per folder (B.6). Every change in a mailbox takes the next value of
// the mailbox's change sequence; a round returns the folder's messages
// changed in (from, upto] and the tombstones of messages that left it, in
// sequence order. The opaque token carries the options, the round and a
// cursor, so nothing is stored per client. Tokens age out after the delta
// TTL or when ExpireDeltaTokens bumps the mailbox's epoch: 410
// syncStateNotFound with a Location to restart from.
//
// Generations: "For Outlook entities (message, mailFolder, event, contact,
// contactFolder, todoTask, and todoTaskList), the upper limit is not fixed;
// it's dependent on the size of the internal delta token cache. While new
// delta tokens are continuously added in the cache, after the cache capacity
// is exceeded, the older delta tokens are deleted." (GDC
// concepts/delta-query-overview.md, "Token duration"; the 410 answer and its
// restart are in "Synchronization reset".) The sim models that cache per
// folder: every page it answers issues a token of the folder's next
// generation, and a token deltaCache generations behind the newest is gone.
// So a client that goes back to an older skip or delta token after the
// folder's sync moved on (its own later pages, or another client's) gets
// 410, as with Exchange, instead of a replay.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

type deltaToken struct {
	Mailbox    string    `json:"mb"`
	Folder     string    `json:"f"`
	Select     []string  `json:"sel,omitempty"`
	Top        int       `json:"top,omitempty"`
	ChangeType string    `json:"ct,omitempty"`
	FilterOp   string    `json:"fop,omitempty"`
	FilterTime time.Time `json:"ft,omitzero"`
	From       uint64    `json:"from"`           // changes after this sequence
	Upto       uint64    `json:"upto"`           // snapshot of the running round
	AfterSeq   uint64    `json:"as,omitempty"`   // cursor: last entry returned
	AfterID    string    `json:"aid,omitempty"`  // cursor tie-break
	Issued     int64     `json:"iss"`            // unix seconds
	Epoch      int       `json:"ep"`             // mailbox delta epoch
	Paging     bool      `json:"page,omitempty"` // a skiptoken (mid-round)
	Gen        uint64    `json:"gen,omitempty"`  // folder delta generation it was issued in
}

// defaultDeltaTokenCache is how many tokens per folder stay valid by
// default. Microsoft does not publish the cache size; 16 lets a client retry
// its last few links and is small enough that stale links show up in tests.
const defaultDeltaTokenCache = 16

func (t *deltaToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeDeltaToken(s string) (*deltaToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode delta token: %w", err)
	}
	var t deltaToken
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode delta token: %w", err)
	}
	return &t, nil
}

// maxFilteredDelta caps the first round of a delta with $filter (B.6).
const maxFilteredDelta = 5000

type deltaEntry struct {
	seq     uint64
	id      string
	m       *message   // nil for a removal
	removed *tombstone // nil for a message
}

// handleDelta answers GET /mailFolders/{fid}/messages/delta.
func (s *Sim) handleDelta(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := c.d.folderByRef(r.PathValue("fid"))
	if f == nil {
		folderNotFound(w, r)
		return
	}
	link := baseURL(r) + r.URL.Path
	tok, ok := s.deltaRound(w, r, c, f, link)
	if !ok {
		return
	}
	if !tok.Paging {
		tok.Upto = c.d.seq
		tok.Paging = true
	}
	tok.Epoch = c.d.deltaEpoch
	tok.Issued = s.now().Unix()
	if c.d.deltaGen == nil {
		c.d.deltaGen = map[string]uint64{}
	}
	c.d.deltaGen[f.id]++
	tok.Gen = c.d.deltaGen[f.id]

	size := deltaPageSize(w, c, tok)

	var entries []deltaEntry
	if !c.emptyPage {
		entries = c.d.deltaEntries(tok, c.pref.immutableID)
	}
	page := entries
	if len(page) > size {
		page = page[:size]
	}
	out := jobj{{"@odata.context", c.base + "/$metadata#Collection(message)"}}
	if c.emptyPage || len(entries) > size {
		if len(page) > 0 {
			last := page[len(page)-1]
			tok.AfterSeq, tok.AfterID = last.seq, last.id
		}
		out = append(out, jkv{"@odata.nextLink", link + "?$skiptoken=" + tok.encode()})
	} else {
		next := &deltaToken{
			Mailbox: tok.Mailbox, Folder: tok.Folder, Select: tok.Select, Top: tok.Top, ChangeType: tok.ChangeType,
			FilterOp: tok.FilterOp, FilterTime: tok.FilterTime, From: tok.Upto, Issued: tok.Issued, Epoch: tok.Epoch,
			Gen: tok.Gen,
		}
		out = append(out, jkv{"@odata.deltaLink", link + "?$deltatoken=" + next.encode()})
	}
	value := make([]any, 0, len(page))
	for _, e := range page {
		if e.removed != nil {
			value = append(value, jobj{{"@odata.type", "#microsoft.graph.message"}, {"id", e.id}, {"@removed", jobj{{"reason", e.removed.reason}}}})
			continue
		}
		value = append(value, c.messageJSON(e.m, tok.Select, true))
	}
	out = append(out, jkv{"value", value})
	writeJSON(w, http.StatusOK, out)
}

// deltaRound returns the token of the round a delta request continues
// ($deltatoken or $skiptoken), or a new round from its query options; a
// token that is not valid here any more is answered 410 with the Location
// of a new round, bad options 400, and ok is false.
func (s *Sim) deltaRound(w http.ResponseWriter, r *http.Request, c *graphCtx, f *folder, link string) (tok *deltaToken, ok bool) {
	q := r.URL.Query()
	if raw := q.Get("$deltatoken") + q.Get("$skiptoken"); raw != "" {
		t, err := decodeDeltaToken(raw)
		expired := err == nil && s.graph.deltaTTL > 0 && s.now().Sub(time.Unix(t.Issued, 0)) > s.graph.deltaTTL
		evicted := err == nil && s.graph.deltaCache > 0 && c.d.deltaGen[f.id] >= t.Gen+uint64(s.graph.deltaCache)
		if err != nil || t.Mailbox != c.mb.ID || t.Folder != f.id || t.Epoch != c.d.deltaEpoch || expired || evicted {
			loc := link
			if err == nil {
				loc += t.initialQuery()
			}
			w.Header().Set("Location", loc)
			// Status, code and Location are documented (B.6); the text is the sim's own.
			writeGraphError(w, r, http.StatusGone, "syncStateNotFound", "The sync state could not be found or has expired. Restart the synchronization from the Location URL.")
			return nil, false
		}
		return t, true
	}
	t, gerr := newDeltaRound(q, c.mb.ID, f.id)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return nil, false
	}
	return t, true
}

// deltaPageSize is the page size of a delta response: $top, or the
// odata.maxpagesize preference (acknowledged in Preference-Applied), 10 by
// default; it also acknowledges IdType and applies the body preference.
func deltaPageSize(w http.ResponseWriter, c *graphCtx, tok *deltaToken) int {
	size := 10
	if tok.Top > 0 {
		size = tok.Top
	}
	if c.pref.maxPageSize > 0 {
		size = c.pref.maxPageSize
		w.Header().Add("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	if c.pref.immutableID {
		w.Header().Add("Preference-Applied", `IdType="ImmutableId"`)
	}
	applyBodyPreference(w, c.pref)
	return size
}

// initialQuery rebuilds the options of a round, for the 410 Location.
func (t *deltaToken) initialQuery() string {
	q := url.Values{}
	if len(t.Select) > 0 {
		q.Set("$select", strings.Join(t.Select, ","))
	}
	if t.Top > 0 {
		q.Set("$top", strconv.Itoa(t.Top))
	}
	if t.ChangeType != "" {
		q.Set("changeType", t.ChangeType)
	}
	if t.FilterOp != "" {
		q.Set("$filter", "receivedDateTime "+t.FilterOp+" "+graphTime(t.FilterTime))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// newDeltaRound reads the options of a first delta request.
func newDeltaRound(q url.Values, mailboxID, folderID string) (*deltaToken, *graphError) {
	t := &deltaToken{Mailbox: mailboxID, Folder: folderID}
	bad := func(msg string) *graphError { return &graphError{http.StatusBadRequest, "ErrorInvalidRequest", msg} }
	if v := q.Get("$select"); v != "" {
		fields, gerr := parseSelect(v, false)
		if gerr != nil {
			return nil, gerr
		}
		t.Select = fields
	}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, bad("The $top value must be an integer from 1 to 1000.")
		}
		t.Top = n
	}
	switch ct := strings.ToLower(q.Get("changeType")); ct {
	case "", "created", "updated", "deleted":
		t.ChangeType = ct
	default:
		return nil, bad("changeType must be created, updated or deleted.")
	}
	if v := q.Get("$filter"); v != "" {
		m := reClause.FindStringSubmatch(v)
		if m == nil || !strings.EqualFold(m[1], "receivedDateTime") || (m[2] != "ge" && m[2] != "gt") {
			return nil, bad("Delta supports only $filter=receivedDateTime ge|gt {value}.")
		}
		ft, err := time.Parse(time.RFC3339, m[3])
		if err != nil {
			return nil, bad("The $filter value must be a DateTimeOffset such as 2024-01-01T00:00:00Z.")
		}
		t.FilterOp, t.FilterTime = m[2], ft
	}
	if v := q.Get("$orderby"); v != "" && !strings.EqualFold(strings.Join(strings.Fields(v), " "), "receivedDateTime desc") {
		return nil, bad("Delta supports only $orderby=receivedDateTime desc.")
	}
	if q.Get("$search") != "" {
		return nil, bad("$search is not supported with delta.")
	}
	return t, nil
}

// deltaEntries lists what a round returns after the token's cursor.
func (d *mailData) deltaEntries(t *deltaToken, immutable bool) []deltaEntry {
	var out []deltaEntry
	inRound := func(seq uint64) bool { return seq > t.From && seq <= t.Upto }
	if t.ChangeType != "deleted" {
		for _, m := range d.messages {
			if m.folderID != t.Folder || !inRound(m.seq) {
				continue
			}
			created := m.enterSeq > t.From
			if (t.ChangeType == "created" && !created) || (t.ChangeType == "updated" && created) {
				continue
			}
			if t.FilterOp != "" && !compareTime(m.received, t.FilterOp, t.FilterTime) {
				continue
			}
			id := m.restID
			if immutable {
				id = m.immutableID
			}
			out = append(out, deltaEntry{seq: m.seq, id: id, m: m})
		}
	}
	if t.FilterOp != "" && t.From == 0 && len(out) > maxFilteredDelta {
		// B.6: with a $filter, at most 5,000 messages: the newest.
		sort.Slice(out, func(i, j int) bool { return out[i].m.received.After(out[j].m.received) })
		out = out[:maxFilteredDelta]
	}
	if t.From > 0 && (t.ChangeType == "" || t.ChangeType == "deleted") {
		for i := range d.tombstones {
			tb := &d.tombstones[i]
			if tb.folderID != t.Folder || !inRound(tb.seq) {
				continue
			}
			id := tb.restID
			if immutable {
				id = tb.immutableID
			}
			out = append(out, deltaEntry{seq: tb.seq, id: id, removed: tb})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].seq != out[j].seq {
			return out[i].seq < out[j].seq
		}
		return out[i].id < out[j].id
	})
	if t.AfterSeq > 0 || t.AfterID != "" {
		k := sort.Search(len(out), func(i int) bool {
			return out[i].seq > t.AfterSeq || (out[i].seq == t.AfterSeq && out[i].id > t.AfterID)
		})
		out = out[k:]
	}
	return out
}
