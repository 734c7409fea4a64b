package m365sim

// The Go side of the mail control API: what "the user" or "the world" does
// to a mailbox outside Graph (mail arrives, the user moves, deletes, reads,
// renames), and what tests read back.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// NewMessage is mail to inject into a mailbox: either Raw MIME, or fields
// from which the sim builds real MIME. It is also the seed file's inline
// message (YAML) and the control API's JSON body.
type NewMessage struct {
	// Folder is a path such as "Inbox" or "Inbox/Support"; default Inbox.
	// Missing folders are created.
	Folder string `json:"folder,omitempty" yaml:"folder"`
	// Raw is a complete RFC 5322 message; when set, the fields below
	// except Received and IsRead are ignored.
	Raw string `json:"raw,omitempty" yaml:"raw"`

	Subject string   `json:"subject,omitempty" yaml:"subject"`
	From    string   `json:"from,omitempty" yaml:"from"` // "Name <addr>" or addr
	To      []string `json:"to,omitempty" yaml:"to"`     // default: the mailbox
	Cc      []string `json:"cc,omitempty" yaml:"cc"`
	Body    string   `json:"body,omitempty" yaml:"body"`
	HTML    bool     `json:"html,omitempty" yaml:"html"`
	// MessageID with angle brackets; generated when empty.
	MessageID string `json:"messageId,omitempty" yaml:"message_id"`
	InReplyTo string `json:"inReplyTo,omitempty" yaml:"in_reply_to"`
	// Headers are extra headers (X-…, References…).
	Headers     []MessageHeader `json:"headers,omitempty" yaml:"headers"`
	Attachments []NewAttachment `json:"attachments,omitempty" yaml:"attachments"`

	// Received is receivedDateTime; default the sim's now.
	Received time.Time `json:"received,omitzero" yaml:"received"`
	IsRead   bool      `json:"isRead,omitempty" yaml:"is_read"`
}

// NewAttachment is an attachment of a NewMessage. Content is used as is;
// when empty, Size deterministic bytes are generated. Kind "reference"
// makes a reference attachment (not part of the MIME) pointing at URL.
type NewAttachment struct {
	Name        string   `json:"name" yaml:"name"`
	ContentType string   `json:"contentType,omitempty" yaml:"content_type"`
	Content     string   `json:"content,omitempty" yaml:"content"`
	Size        ByteSize `json:"size,omitempty" yaml:"size"`
	ContentID   string   `json:"contentId,omitempty" yaml:"content_id"`
	Inline      bool     `json:"inline,omitempty" yaml:"inline"`
	Kind        string   `json:"kind,omitempty" yaml:"kind"` // "file" (default) or "reference"
	URL         string   `json:"url,omitempty" yaml:"url"`
}

// MessageHeader is one internet message header.
type MessageHeader struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

// MessageInfo is a message as tests see it.
type MessageInfo struct {
	ID                string    `json:"id"` // rest id (changes on move)
	ImmutableID       string    `json:"immutableId"`
	Subject           string    `json:"subject"`
	IsRead            bool      `json:"isRead"`
	Folder            string    `json:"folder"` // display path, e.g. Inbox/Support
	FolderID          string    `json:"folderId"`
	From              string    `json:"from"` // address
	InternetMessageID string    `json:"internetMessageId"`
	Received          time.Time `json:"received"`
	// Headers are the MIME headers as stored (the control API shows them
	// even where Graph's internetMessageHeaders is empty, on Sent Items
	// copies).
	Headers []MessageHeader `json:"headers"`
	// ExtendedProperties are the single-value extended properties, id to
	// value, as set.
	ExtendedProperties map[string]string `json:"extendedProperties,omitempty"`
	// Attachments are the attachments' names and sizes.
	Attachments []AttachmentInfo `json:"attachments,omitempty"`
}

// AttachmentInfo is an attachment as tests see it.
type AttachmentInfo struct {
	Name string `json:"name"`
	Size int    `json:"size"`
	// SHA256 is the hex digest of the content.
	SHA256 string `json:"sha256"`
}

// mailboxLocked finds a mailbox by address or object id.
func (s *Sim) mailboxLocked(ref string) (*Mailbox, error) {
	if mb := s.mailboxes[strings.ToLower(ref)]; mb != nil {
		return mb, nil
	}
	if mb := s.mailboxByID[ref]; mb != nil {
		return mb, nil
	}
	return nil, fmt.Errorf("find mailbox %q: %w", ref, ErrNotFound)
}

func (d *mailData) info(m *message) MessageInfo {
	mi := MessageInfo{
		ID: m.restID, ImmutableID: m.immutableID, Subject: m.content.Subject, IsRead: m.isRead,
		Folder: d.folderPath(d.folders[m.folderID]), FolderID: m.folderID,
		InternetMessageID: m.content.MessageID, Received: m.received,
	}
	if m.content.From != nil {
		mi.From = m.content.From.Address
	}
	for _, h := range m.content.Headers {
		mi.Headers = append(mi.Headers, MessageHeader(h))
	}
	for _, p := range m.extProps {
		if mi.ExtendedProperties == nil {
			mi.ExtendedProperties = map[string]string{}
		}
		mi.ExtendedProperties[p.ID] = p.Value
	}
	for i := range m.content.Attachments {
		a := m.content.Attachments[i]
		sum := sha256.Sum256(a.bytes())
		mi.Attachments = append(mi.Attachments, AttachmentInfo{Name: a.Name, Size: a.Size, SHA256: hex.EncodeToString(sum[:])})
	}
	return mi
}

// InjectMessage delivers a message into a mailbox folder, as if it had
// arrived by SMTP (or been filed there by a rule).
func (s *Sim) InjectMessage(mailbox string, nm NewMessage) (MessageInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailboxLocked(mailbox)
	if err != nil {
		return MessageInfo{}, fmt.Errorf("inject message: %w", err)
	}
	m, err := s.injectLocked(mb, nm)
	if err != nil {
		return MessageInfo{}, fmt.Errorf("inject message into %s: %w", mb.Address, err)
	}
	return mb.data.info(m), nil
}

// InjectMail delivers raw MIME bytes into folderPath of a mailbox.
func (s *Sim) InjectMail(mailbox, folderPath string, raw []byte) (MessageInfo, error) {
	return s.InjectMessage(mailbox, NewMessage{Folder: folderPath, Raw: string(raw)})
}

func (s *Sim) injectLocked(mb *Mailbox, nm NewMessage) (*message, error) {
	d := mb.data
	path := nm.Folder
	if path == "" {
		path = "Inbox"
	}
	f, err := d.ensurePath(path)
	if err != nil {
		return nil, err
	}
	now := s.now()
	received := nm.Received
	if received.IsZero() {
		received = now
	}
	raw := []byte(nm.Raw)
	if nm.Raw == "" {
		raw, err = s.buildNewMessage(mb, nm, received)
		if err != nil {
			return nil, err
		}
	}
	content, err := parseMIME(raw)
	if err != nil {
		return nil, err
	}
	for _, a := range nm.Attachments {
		if a.Kind == "reference" {
			content.Attachments = append(content.Attachments, &mimeAttachment{Kind: "reference", Name: a.Name, ContentType: a.ContentType, SourceURL: a.URL})
		}
	}
	m := d.addMessage(content, func() []byte { return raw }, f.id, received, now)
	m.isRead = nm.IsRead
	return m, nil
}

// buildNewMessage renders a field-described message as MIME.
func (s *Sim) buildNewMessage(mb *Mailbox, nm NewMessage, received time.Time) ([]byte, error) {
	from, err := parseOneAddress(nm.From, "someone@example.com")
	if err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	to := []mailAddress{{Name: mb.DisplayName, Address: mb.Address}}
	if len(nm.To) > 0 {
		if to, err = parseAddresses(nm.To); err != nil {
			return nil, fmt.Errorf("to: %w", err)
		}
	}
	cc, err := parseAddresses(nm.Cc)
	if err != nil {
		return nil, fmt.Errorf("cc: %w", err)
	}
	o := &outgoingMail{From: from, To: to, Cc: cc, Subject: nm.Subject, Date: received.Add(-5 * time.Second),
		MessageID: nm.MessageID, HTML: nm.HTML, Body: nm.Body}
	if o.MessageID == "" {
		o.MessageID = fmt.Sprintf("<sim-%s@%s>", mb.data.newID("msg"), domainOf(from.Address))
	}
	if nm.InReplyTo != "" {
		o.Extra = append(o.Extra, mimeHeader{"In-Reply-To", nm.InReplyTo}, mimeHeader{"References", nm.InReplyTo})
	}
	for _, h := range nm.Headers {
		o.Extra = append(o.Extra, mimeHeader(h))
	}
	for i, a := range nm.Attachments {
		if a.Kind == "reference" {
			continue
		}
		data := []byte(a.Content)
		if a.Content == "" {
			data = syntheticBytes(uint64(s.opts.Seed)+uint64(i), int(a.Size))
		}
		o.Attachments = append(o.Attachments, outAttachment{Name: a.Name, ContentType: a.ContentType, ContentID: a.ContentID,
			Inline: a.Inline, Data: func() []byte { return data }})
	}
	return buildMIME(o), nil
}

func domainOf(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok && d != "" {
		return d
	}
	return "sim.invalid"
}

func parseOneAddress(v, def string) (mailAddress, error) {
	if strings.TrimSpace(v) == "" {
		v = def
	}
	a, err := addressParser.Parse(v)
	if err != nil {
		return mailAddress{}, fmt.Errorf("parse address %q: %w", v, err)
	}
	return mailAddress{Name: a.Name, Address: a.Address}, nil
}

func parseAddresses(list []string) ([]mailAddress, error) {
	var out []mailAddress
	for _, v := range list {
		a, err := parseOneAddress(v, "")
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Messages lists a folder's messages (newest first) for assertions; nil
// when the mailbox or folder does not exist.
func (s *Sim) Messages(mailbox, folderPath string) []MessageInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailboxLocked(mailbox)
	if err != nil {
		return nil
	}
	s.fileDueLocked()
	f, err := mb.data.resolvePath(folderPath)
	if err != nil {
		return nil
	}
	var out []MessageInfo
	for _, m := range mb.data.inFolder(f.id) {
		out = append(out, mb.data.info(m))
	}
	return out
}

// withMessage runs fn on a message found by rest or immutable id.
func (s *Sim) withMessage(mailbox, id string, fn func(d *mailData, m *message) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailboxLocked(mailbox)
	if err != nil {
		return err
	}
	m := mb.data.find(id)
	if m == nil {
		return fmt.Errorf("find message %q in %s: %w", id, mb.Address, ErrNotFound)
	}
	return fn(mb.data, m)
}

// MoveMessage moves a message to folderPath as the user would in Outlook;
// the message gets a new rest id.
func (s *Sim) MoveMessage(mailbox, id, folderPath string) (MessageInfo, error) {
	var mi MessageInfo
	err := s.withMessage(mailbox, id, func(d *mailData, m *message) error {
		f, err := d.resolvePath(folderPath)
		if err != nil {
			return err
		}
		d.move(m, f.id, "changed", s.now())
		mi = d.info(m)
		return nil
	})
	if err != nil {
		return mi, fmt.Errorf("move message: %w", err)
	}
	return mi, nil
}

// DeleteMessage deletes as the user would: into Deleted Items, or with
// hard, gone for good.
func (s *Sim) DeleteMessage(mailbox, id string, hard bool) error {
	err := s.withMessage(mailbox, id, func(d *mailData, m *message) error {
		if hard {
			d.purge(m)
		} else {
			d.move(m, d.wellKnown["deleteditems"], "changed", s.now())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete message: %w", err)
	}
	return nil
}

// SetRead marks a message read or unread as the user would.
func (s *Sim) SetRead(mailbox, id string, read bool) error {
	err := s.withMessage(mailbox, id, func(d *mailData, m *message) error {
		m.isRead = read
		d.touch(m, s.now())
		return nil
	})
	if err != nil {
		return fmt.Errorf("set read: %w", err)
	}
	return nil
}

func (s *Sim) withMailbox(mailbox string, fn func(mb *Mailbox) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.mailboxLocked(mailbox)
	if err != nil {
		return err
	}
	return fn(mb)
}

// CreateFolder creates folderPath (and missing parents) and returns its id.
func (s *Sim) CreateFolder(mailbox, folderPath string) (string, error) {
	var id string
	err := s.withMailbox(mailbox, func(mb *Mailbox) error {
		f, err := mb.data.ensurePath(folderPath)
		if err == nil {
			id = f.id
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create folder: %w", err)
	}
	return id, nil
}

// FolderID resolves a folder path to its (constant) id.
func (s *Sim) FolderID(mailbox, folderPath string) (string, error) {
	var id string
	err := s.withMailbox(mailbox, func(mb *Mailbox) error {
		f, err := mb.data.resolvePath(folderPath)
		if err == nil {
			id = f.id
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("folder id: %w", err)
	}
	return id, nil
}

// RenameFolder gives the folder at folderPath a new display name; its id
// stays.
func (s *Sim) RenameFolder(mailbox, folderPath, newName string) error {
	err := s.withMailbox(mailbox, func(mb *Mailbox) error {
		f, err := mb.data.resolvePath(folderPath)
		if err != nil {
			return err
		}
		if gerr := mb.data.rename(f, newName); gerr != nil {
			return fmt.Errorf("%s", gerr.msg)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rename folder: %w", err)
	}
	return nil
}

// SetMailboxEnabled turns a mailbox's REST access on or off; off answers
// 404 MailboxNotEnabledForRESTAPI.
func (s *Sim) SetMailboxEnabled(mailbox string, enabled bool) error {
	err := s.withMailbox(mailbox, func(mb *Mailbox) error {
		mb.Enabled = enabled
		return nil
	})
	if err != nil {
		return fmt.Errorf("set mailbox enabled: %w", err)
	}
	return nil
}

// ExpireDeltaTokens invalidates every delta and skip token of a mailbox
// (all mailboxes when mailbox is ""): their next use answers 410.
func (s *Sim) ExpireDeltaTokens(mailbox string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mailbox == "" {
		for _, mb := range s.mailboxByID {
			mb.data.deltaEpoch++
		}
		return nil
	}
	mb, err := s.mailboxLocked(mailbox)
	if err != nil {
		return fmt.Errorf("expire delta tokens: %w", err)
	}
	mb.data.deltaEpoch++
	return nil
}

// SetDeltaTokenTTL sets how long a delta token stays usable (0: forever;
// default 7 days of sim time).
func (s *Sim) SetDeltaTokenTTL(d time.Duration) {
	s.mu.Lock()
	s.graph.deltaTTL = d
	s.mu.Unlock()
}

// SetDeltaTokenCache sets how many delta and skip tokens per folder stay
// valid (default 16; 0: no limit). Each delta page answered issues one; the
// oldest beyond n answer 410 syncStateNotFound, as Exchange's delta token
// cache drops its oldest tokens.
func (s *Sim) SetDeltaTokenCache(n int) {
	s.mu.Lock()
	s.graph.deltaCache = max(n, 0)
	s.mu.Unlock()
}
