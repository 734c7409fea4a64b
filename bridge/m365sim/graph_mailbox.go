package m365sim

// A mailbox's store: folders, messages and the change sequence that delta
// reads. Everything here runs with s.mu held.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"
)

// folder is a mail folder. Its id never changes.
type folder struct {
	id        string
	name      string
	parentID  string
	wellKnown string // lower-case well-known name, "" for user folders
	hidden    bool
}

// message is one item in the store. The immutable id survives moves; the
// rest id changes on every move, as Exchange's do.
type message struct {
	immutableID string
	restID      string
	folderID    string
	content     *mimeMessage
	raw         func() []byte // the original bytes, rendered on demand for generated mail

	received, created, modified time.Time
	isRead                      bool
	isDraft                     bool
	categories                  []string
	flag                        map[string]any // followupFlag as last PATCHed
	importance                  string         // set by PATCH; "" means from MIME
	inference                   string         // inferenceClassification set by PATCH; "" means focused
	// deliveryReceipt is isDeliveryReceiptRequested: false on a draft made
	// from JSON (GDC user-post-messages.md examples 1 and 2), null
	// otherwise (the MIME draft of example 3, message-move.md).
	deliveryReceipt *bool
	version         int // bumps on every change: changeKey
	// extProps are its single-value extended properties (graph_drafts.go).
	extProps map[string]extProp
	// sentCopy marks the Sent Items copy of mail this mailbox sent: Graph
	// shows it without internetMessageHeaders (graph_drafts.go).
	sentCopy bool

	seq      uint64 // mailbox change sequence of the last change
	enterSeq uint64 // sequence at which it entered its current folder
}

// tombstone remembers a message that left a folder, for delta's @removed.
type tombstone struct {
	folderID    string
	immutableID string
	restID      string // the rest id it had in that folder
	seq         uint64
	reason      string // "changed" (moved out, still restorable) or "deleted" (purged)
}

// mailData is one mailbox's folders, messages and delta state.
type mailData struct {
	mb         *Mailbox
	storeRoot  string // parent of msgfolderroot; not addressable
	folders    map[string]*folder
	wellKnown  map[string]string // well-known name -> folder id
	messages   map[string]*message
	byRest     map[string]*message
	tombstones []tombstone
	seq        uint64
	idCounter  uint64
	// deltaEpoch invalidates every delta token issued before it changed.
	deltaEpoch int
	// onMove is Options.OnMove.
	onMove func(MoveEvent)
	// arrived hears every message that enters a folder (new, moved or
	// copied in): the sim's change notifications (graph_notify.go).
	arrived func(d *mailData, m *message)
	// deltaGen is each folder's delta generation: the number of delta
	// tokens issued for it so far (see Sim.graph.deltaCache).
	deltaGen map[string]uint64
}

// wellKnownFolders are created in every mailbox under msgfolderroot.
var wellKnownFolders = []struct{ name, display string }{
	{"inbox", "Inbox"},
	{"drafts", "Drafts"},
	{"sentitems", "Sent Items"},
	{"deleteditems", "Deleted Items"},
	{"junkemail", "Junk Email"},
	{"archive", "Archive"},
	{"outbox", "Outbox"},
	{"conversationhistory", "Conversation History"},
}

func newMailData(s *Sim, mb *Mailbox) *mailData {
	d := &mailData{
		mb: mb, folders: map[string]*folder{}, wellKnown: map[string]string{},
		messages: map[string]*message{}, byRest: map[string]*message{}, onMove: s.opts.OnMove,
		arrived: s.messageArrivedLocked,
	}
	d.storeRoot = d.newID("AAMkAD")
	root := d.addFolder("Top of Information Store", d.storeRoot, "msgfolderroot")
	for _, wk := range wellKnownFolders {
		d.addFolder(wk.display, root.id, wk.name)
	}
	rec := d.addFolder("Recoverable Items", d.storeRoot, "recoverableitemsroot")
	rec.hidden = true
	del := d.addFolder("Deletions", rec.id, "recoverableitemsdeletions")
	del.hidden = true
	return d
}

// newID returns a deterministic Graph-looking id: base64 over a hash of the
// mailbox and a counter, so a seeded run hands out the same ids.
func (d *mailData) newID(prefix string) string {
	d.idCounter++
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], d.idCounter)
	h := sha256.Sum256(append([]byte(d.mb.ID+"/"+prefix+"/"), n[:]...))
	return prefix + base64.URLEncoding.EncodeToString(append(h[:], n[:]...))
}

func (d *mailData) addFolder(name, parentID, wellKnown string) *folder {
	f := &folder{id: d.newID("AAMkAD"), name: name, parentID: parentID, wellKnown: wellKnown}
	d.folders[f.id] = f
	if wellKnown != "" {
		d.wellKnown[wellKnown] = f.id
	}
	return f
}

// folderByRef finds a folder by id or well-known name (case-insensitive).
func (d *mailData) folderByRef(ref string) *folder {
	if f := d.folders[ref]; f != nil {
		return f
	}
	if id, ok := d.wellKnown[strings.ToLower(ref)]; ok {
		return d.folders[id]
	}
	return nil
}

func (d *mailData) root() *folder { return d.folders[d.wellKnown["msgfolderroot"]] }

// children lists a folder's direct children by display name.
func (d *mailData) children(parentID string, includeHidden bool) []*folder {
	var out []*folder
	for _, f := range d.folders {
		if f.parentID == parentID && (includeHidden || !f.hidden) {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].name), strings.ToLower(out[j].name)
		if a != b {
			return a < b
		}
		return out[i].id < out[j].id
	})
	return out
}

// resolvePath resolves "Inbox/Support/Tier2": the first segment by
// well-known name or display name under the root, the rest by display name,
// case-insensitively.
func (d *mailData) resolvePath(path string) (*folder, error) {
	path = strings.Trim(path, "/")
	if path == "" {
		return d.root(), nil
	}
	segs := strings.Split(path, "/")
	var cur *folder
	for i, seg := range segs {
		parent := d.root()
		if i == 0 {
			if f := d.folderByRef(seg); f != nil {
				cur = f
				continue
			}
		} else {
			parent = cur
		}
		cur = nil
		for _, c := range d.children(parent.id, true) {
			if strings.EqualFold(c.name, seg) {
				cur = c
				break
			}
		}
		if cur == nil {
			return nil, fmt.Errorf("find folder %q in %s: %w", strings.Join(segs[:i+1], "/"), d.mb.Address, ErrNotFound)
		}
	}
	return cur, nil
}

// ensurePath resolves path, creating missing folders.
func (d *mailData) ensurePath(path string) (*folder, error) {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil, fmt.Errorf("empty folder path")
	}
	segs := strings.Split(path, "/")
	for i := range segs {
		f, err := d.resolvePath(strings.Join(segs[:i+1], "/"))
		if err == nil {
			if i == len(segs)-1 {
				return f, nil
			}
			continue
		}
		parent := d.root()
		if i > 0 {
			parent, _ = d.resolvePath(strings.Join(segs[:i], "/"))
		}
		if strings.TrimSpace(segs[i]) == "" {
			return nil, fmt.Errorf("folder path %q has an empty segment", path)
		}
		d.addFolder(segs[i], parent.id, "")
	}
	return d.resolvePath(path)
}

// folderPath is the display path of a folder below the root.
func (d *mailData) folderPath(f *folder) string {
	var segs []string
	for f != nil && f.wellKnown != "msgfolderroot" {
		segs = append([]string{f.name}, segs...)
		f = d.folders[f.parentID]
	}
	return strings.Join(segs, "/")
}

// inTree reports whether folder id lies under ancestor (or is it).
func (d *mailData) inTree(id, ancestor string) bool {
	for i := 0; id != "" && i < 64; i++ {
		if id == ancestor {
			return true
		}
		f := d.folders[id]
		if f == nil {
			return false
		}
		id = f.parentID
	}
	return false
}

func (d *mailData) counts(fid string) (total, unread, childFolders int) {
	for _, m := range d.messages {
		if m.folderID == fid {
			total++
			if !m.isRead {
				unread++
			}
		}
	}
	for _, f := range d.folders {
		if f.parentID == fid {
			childFolders++
		}
	}
	return
}

// find returns a message by rest id or immutable id.
func (d *mailData) find(id string) *message {
	if m := d.byRest[id]; m != nil {
		return m
	}
	return d.messages[id]
}

func (d *mailData) nextSeq() uint64 {
	d.seq++
	return d.seq
}

// addMessage stores a new message in folder fid.
func (d *mailData) addMessage(content *mimeMessage, raw func() []byte, fid string, received, now time.Time) *message {
	m := &message{
		immutableID: d.newID("AAkALg"), restID: d.newID("AAMkAG"), folderID: fid,
		content: content, raw: raw, received: received.UTC(), created: now.UTC(), modified: now.UTC(),
		importance: "",
	}
	m.seq = d.nextSeq()
	m.enterSeq = m.seq
	d.messages[m.immutableID] = m
	d.byRest[m.restID] = m
	d.arrived(d, m)
	return m
}

// touch records a change to m (isRead, flag, categories).
func (d *mailData) touch(m *message, now time.Time) {
	m.version++
	m.modified = now.UTC()
	m.seq = d.nextSeq()
}

// move puts m into folder fid with a new rest id, leaving a tombstone.
func (d *mailData) move(m *message, fid, reason string, now time.Time) {
	if m.folderID == fid {
		return
	}
	seq := d.nextSeq()
	d.observeMove(m, fid)
	d.tombstones = append(d.tombstones, tombstone{folderID: m.folderID, immutableID: m.immutableID, restID: m.restID, seq: seq, reason: reason})
	delete(d.byRest, m.restID)
	m.restID = d.newID("AAMkAG")
	d.byRest[m.restID] = m
	m.folderID = fid
	m.version++
	m.modified = now.UTC()
	m.seq, m.enterSeq = seq, seq
	d.arrived(d, m)
}

// copyTo stores a copy of m in folder fid.
func (d *mailData) copyTo(m *message, fid string, now time.Time) *message {
	c := d.addMessage(m.content, m.raw, fid, m.received, now)
	c.isRead, c.isDraft, c.importance = m.isRead, m.isDraft, m.importance
	c.categories = append([]string(nil), m.categories...)
	c.flag = m.flag
	c.sentCopy = m.sentCopy
	for k, v := range m.extProps {
		if c.extProps == nil {
			c.extProps = map[string]extProp{}
		}
		c.extProps[k] = v
	}
	return c
}

// observeMove tells Options.OnMove that m leaves its folder for fid ("":
// purged).
func (d *mailData) observeMove(m *message, fid string) {
	if d.onMove == nil {
		return
	}
	ev := MoveEvent{Mailbox: d.mb.Address, ImmutableID: m.immutableID, From: d.folderPath(d.folders[m.folderID])}
	if fid != "" {
		ev.To = d.folderPath(d.folders[fid])
	}
	d.onMove(ev)
}

// purge removes m from the store for good.
func (d *mailData) purge(m *message) {
	d.observeMove(m, "")
	d.tombstones = append(d.tombstones, tombstone{folderID: m.folderID, immutableID: m.immutableID, restID: m.restID, seq: d.nextSeq(), reason: "deleted"})
	delete(d.byRest, m.restID)
	delete(d.messages, m.immutableID)
}

// inFolder lists the messages of folder fid (or, with fid "", of every
// folder under msgfolderroot) newest first.
func (d *mailData) inFolder(fid string) []*message {
	var out []*message
	root := d.wellKnown["msgfolderroot"]
	for _, m := range d.messages {
		if (fid != "" && m.folderID == fid) || (fid == "" && d.inTree(m.folderID, root)) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].received.Equal(out[j].received) {
			return out[i].received.After(out[j].received)
		}
		return out[i].immutableID < out[j].immutableID
	})
	return out
}

// effectiveImportance is the PATCHed importance or the one from MIME.
func (m *message) effectiveImportance() string {
	if m.importance != "" {
		return m.importance
	}
	if m.content.Importance != "" {
		return m.content.Importance
	}
	return "normal"
}

// changeKey is the message's version stamp, also used in @odata.etag.
func (m *message) changeKey() string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", m.immutableID, m.version)))
	return "CQAAABYAAAA" + base64.StdEncoding.EncodeToString(h[:15])
}

// conversationID is stable per thread: derived from the root of
// References, else In-Reply-To, else the message's own Message-ID.
func (m *message) conversationID(mailboxID string) string {
	root := m.content.MessageID
	if len(m.content.References) > 0 {
		root = m.content.References[0]
	} else if m.content.InReplyTo != "" {
		root = m.content.InReplyTo
	}
	if root == "" {
		root = m.immutableID
	}
	h := sha256.Sum256([]byte(mailboxID + "/" + strings.ToLower(root)))
	return "AAQkA" + base64.URLEncoding.EncodeToString(h[:24])
}

func (m *message) conversationIndex(mailboxID string) string {
	h := sha256.Sum256([]byte(m.conversationID(mailboxID)))
	return base64.StdEncoding.EncodeToString(h[:22])
}
