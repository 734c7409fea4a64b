package m365sim

// Seeding a mailbox: folders, a directory of .eml files, inline messages,
// and a deterministic generator of synthetic mail. Generated messages keep
// only a seed and sizes; their bodies, attachments and MIME are rendered on
// demand, so a 10,000-message mailbox with 1 MiB attachments stays small.

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MailSeed says what mail a mailbox starts with (the `mail:` key of a
// user or shared mailbox in the seed file).
type MailSeed struct {
	// Folders to create, as paths: [Inbox/Support, Archive/2024].
	Folders []string `yaml:"folders"`
	// EMLDir is a directory of *.eml files (relative to the working
	// directory), filed in EMLFolder (default Inbox) in name order.
	EMLDir    string `yaml:"eml_dir"`
	EMLFolder string `yaml:"eml_folder"`
	// Messages are described inline.
	Messages []NewMessage `yaml:"messages"`
	// Generate adds synthetic messages.
	Generate *GenerateSpec `yaml:"generate"`
}

// GenerateSpec describes synthetic mail: Count messages in Folder with
// bodies of about Size bytes, received evenly over [ReceivedFrom,
// ReceivedUntil], some with attachments per Attachments. The result depends
// only on Options.Seed and the mailbox address.
type GenerateSpec struct {
	Count  int      `yaml:"count"`
	Folder string   `yaml:"folder"` // default Inbox
	Size   ByteSize `yaml:"size"`   // body size; default 10KiB
	// Attachments: each entry gives Percent of the messages one attachment
	// of Size bytes (entries are exclusive: 10% 100KiB and 1% 1MiB).
	Attachments   []AttachmentMix `yaml:"attachments"`
	ReceivedFrom  time.Time       `yaml:"received_from"`  // default until - 30 days
	ReceivedUntil time.Time       `yaml:"received_until"` // default now
	// ReadPercent of the messages are already read.
	ReadPercent float64 `yaml:"read_percent"`
}

// AttachmentMix is one share of generated messages with an attachment.
type AttachmentMix struct {
	Percent     float64  `yaml:"percent"`
	Size        ByteSize `yaml:"size"`
	ContentType string   `yaml:"content_type"` // default application/pdf
}

// ByteSize is a size in bytes; YAML accepts 10240, "10KiB", "1MiB", "100KB".
type ByteSize int64

// UnmarshalYAML parses plain numbers and B/KB/KiB/MB/MiB suffixes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "10240", "10KiB", "1MiB", "100KB", "2MB".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes such as 10240, 10KiB or 1MiB", s)
	}
	return ByteSize(n * float64(mult)), nil
}

// seedMailLocked fills mb from ms; s.mu is held.
func (s *Sim) seedMailLocked(mb *Mailbox, ms MailSeed) error {
	for _, p := range ms.Folders {
		if _, err := mb.data.ensurePath(p); err != nil {
			return fmt.Errorf("folder %q: %w", p, err)
		}
	}
	if ms.EMLDir != "" {
		if err := s.seedEMLLocked(mb, ms.EMLDir, ms.EMLFolder); err != nil {
			return err
		}
	}
	for i, nm := range ms.Messages {
		if _, err := s.injectLocked(mb, nm); err != nil {
			return fmt.Errorf("messages[%d]: %w", i, err)
		}
	}
	if ms.Generate != nil {
		if err := s.generateLocked(mb, *ms.Generate); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	return nil
}

func (s *Sim) seedEMLLocked(mb *Mailbox, dir, folderPath string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read eml_dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".eml") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("eml_dir %s holds no *.eml files", dir)
	}
	sort.Strings(names)
	log := s.opts.Logger.With("mailbox", mb.Address, "eml_dir", dir)
	for _, name := range names {
		// One bad file fails alone: Exchange takes any message it is
		// handed, and the rest of the directory still gets seeded.
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			log.Warn("eml skipped: cannot read it", "file", name, "error", err)
			continue
		}
		c, err := parseMIME(raw)
		if err != nil {
			log.Warn("eml skipped: not a message", "file", name, "error", err)
			continue
		}
		if len(c.Repairs) > 0 {
			log.Warn("eml malformed: seeded as Exchange would convert it", "file", name,
				"repairs", len(c.Repairs), "first", c.Repairs[0])
		}
		nm := NewMessage{Folder: folderPath, Raw: string(raw), Received: c.Received}
		if nm.Received.IsZero() {
			nm.Received = c.Date
		}
		if _, err := s.injectLocked(mb, nm); err != nil {
			return fmt.Errorf("eml %s: %w", name, err)
		}
	}
	return nil
}

// syntheticBytes is n deterministic pseudo-random bytes for seed.
func syntheticBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	c := rand.NewChaCha8(key)
	b := make([]byte, n)
	c.Read(b)
	return b
}

var lorem = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua printer invoice order delivery account password reset refund shipment ticket urgent please help thanks regards meeting tomorrow update status question`)

func words(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = lorem[r.IntN(len(lorem))]
	}
	return strings.Join(w, " ")
}

// syntheticHTML renders an html body of about size bytes from seed.
func syntheticHTML(seed uint64, size int) string {
	r := rand.New(rand.NewPCG(seed, 0xb0d1))
	var b strings.Builder
	b.WriteString("<html><body>")
	for b.Len() < size {
		b.WriteString("<p>" + words(r, 12+r.IntN(20)) + ".</p>\r\n")
	}
	b.WriteString("</body></html>")
	return b.String()
}

var syntheticSenders = []mailAddress{
	{"Ada Customer", "ada@customer.example"}, {"Bob Buyer", "bob@buyer.example"},
	{"Chen Client", "chen@client.example"}, {"Dana Driver", "dana@logistics.example"},
	{"Eve Example", "eve@example.org"}, {"Femi Partner", "femi@partner.example"},
}

// generateLocked adds spec.Count synthetic messages to mb.
func (s *Sim) generateLocked(mb *Mailbox, spec GenerateSpec) error {
	if spec.Count < 0 {
		return fmt.Errorf("count %d must not be negative", spec.Count)
	}
	size := int(spec.Size)
	if size == 0 {
		size = 10 << 10
	}
	total := 0.0
	for _, a := range spec.Attachments {
		total += a.Percent
	}
	if total > 100 {
		return fmt.Errorf("attachment percentages add up to %v, more than 100", total)
	}
	folderPath := spec.Folder
	if folderPath == "" {
		folderPath = "Inbox"
	}
	f, err := mb.data.ensurePath(folderPath)
	if err != nil {
		return err
	}
	from, until, err := s.generateWindow(spec)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(mb.Address)))
	r := rand.New(rand.NewPCG(uint64(s.opts.Seed), h.Sum64()))
	now := s.now()
	to := mailAddress{Name: mb.DisplayName, Address: mb.Address}
	for i := 0; i < spec.Count; i++ {
		received := from
		if spec.Count > 1 {
			received = from.Add(time.Duration(int64(until.Sub(from)) / int64(spec.Count-1) * int64(i)))
		}
		received = received.Truncate(time.Second)
		seed := r.Uint64()
		sender := syntheticSenders[r.IntN(len(syntheticSenders))]
		subject := fmt.Sprintf("Synthetic %d: %s", i+1, words(r, 4))
		att := pickAttachment(r, spec.Attachments)
		read := r.Float64()*100 < spec.ReadPercent
		o := &outgoingMail{From: sender, To: []mailAddress{to}, Subject: subject, Date: received.Add(-7 * time.Second),
			MessageID: fmt.Sprintf("<gen-%d-%x@%s>", i+1, seed, domainOf(sender.Address)), HTML: true}
		content := &mimeMessage{Subject: subject, From: &sender, Sender: &sender, To: []mailAddress{to},
			MessageID: o.MessageID, Date: o.Date, Importance: "normal"}
		bodySeed, bodySize := seed, size
		content.lazyBody = func() (string, string) {
			h := syntheticHTML(bodySeed, bodySize)
			return h, htmlToText(h)
		}
		if att != nil {
			ct := att.ContentType
			if ct == "" {
				ct = "application/pdf"
			}
			attSize, attSeed := int(att.Size), seed^0xa77
			name := fmt.Sprintf("document-%d%s", i+1, extensionFor(ct))
			lazy := func() []byte { return syntheticBytes(attSeed, attSize) }
			o.Attachments = []outAttachment{{Name: name, ContentType: ct, Data: lazy}}
			content.Attachments = []*mimeAttachment{{Kind: "file", Name: name, ContentType: ct, Size: attSize, lazy: lazy}}
		}
		content.Headers = o.mimeHeaders()
		tmpl := *o
		raw := func() []byte {
			out := tmpl
			out.Body, _ = content.lazyBody()
			return buildMIME(&out)
		}
		m := mb.data.addMessage(content, raw, f.id, received, now)
		m.isRead = read
	}
	return nil
}

// generateWindow is the span the received times of generated messages
// cover: spec's, by default the 30 days up to now.
func (s *Sim) generateWindow(spec GenerateSpec) (from, until time.Time, err error) {
	until = spec.ReceivedUntil
	if until.IsZero() {
		until = s.now()
	}
	from = spec.ReceivedFrom
	if from.IsZero() {
		from = until.Add(-30 * 24 * time.Hour)
	}
	if until.Before(from) {
		return time.Time{}, time.Time{}, fmt.Errorf("received_until %s is before received_from %s", until, from)
	}
	return from, until, nil
}

// pickAttachment rolls r once and picks the attachment kind of one
// generated message by the percentages of mix; nil for none.
func pickAttachment(r *rand.Rand, mix []AttachmentMix) *AttachmentMix {
	roll, acc := r.Float64()*100, 0.0
	for k := range mix {
		acc += mix[k].Percent
		if roll < acc {
			return &mix[k]
		}
	}
	return nil
}

// extensionFor is the file name extension of a generated attachment of
// contentType.
func extensionFor(contentType string) string {
	switch contentType {
	case "application/pdf":
		return ".pdf"
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "text/plain":
		return ".txt"
	}
	return ".bin"
}
