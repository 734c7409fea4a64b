package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/webhooks"
)

// TestEncodeMailMatchesNewEvent: EncodeMail gives exactly
// EncodeEnvelope(NewEvent(...)) for events with large content (spliced),
// small content and content that is not plain base64 (both encoded by
// encoding/json), and leaves the data as it found it.
func TestEncodeMailMatchesNewEvent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	msg := testMessage()
	// Text that looks like a placeholder, and HTML-escaped characters,
	// around the spliced content.
	msg.Body.Content = "<p>m365bridge-content-00000000000000000000000000000000-000000 &amp; \u2028</p>"
	msg.Attachments = append(msg.Attachments,
		graph.Attachment{ODataType: graph.FileAttachment, Name: "one.bin", ContentBytes: blob(100 << 10)},
		graph.Attachment{ODataType: graph.FileAttachment, Name: "two.bin", ContentBytes: blob(5000)},
		graph.Attachment{ODataType: graph.FileAttachment, Name: "tiny.bin", ContentBytes: blob(7)},
		graph.Attachment{ODataType: graph.FileAttachment, Name: "three.bin", ContentBytes: blob(300 << 10)})
	src := testSource(ArchivePolicy{})
	src.Channel.MaxAttachmentBytes = 1 << 20
	raw := &webhooks.RawMIME{Included: true, Size: 9000, ContentBase64: base64.StdEncoding.EncodeToString(blob(9000))}
	for _, tt := range []struct {
		name string
		raw  *webhooks.RawMIME
		edit func(d *webhooks.MailData)
	}{
		{"attachments", nil, func(*webhooks.MailData) {}},
		{"attachments and raw MIME", raw, func(*webhooks.MailData) {}},
		{"content that is not plain base64", raw, func(d *webhooks.MailData) {
			d.Article.Attachments[4].ContentBase64 = strings.Repeat("<&>\"", 2000) // encoded by encoding/json
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			typ, d, err := MailDataOf(src, msg, tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(d)
			before, _ := json.Marshal(d)
			ev, err := webhooks.NewEvent(typ, src.Now, d)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodeMail(typ, src.Now, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("EncodeMail differs from json.Marshal(NewEvent(...)): %d vs %d bytes", len(got), len(want))
			}
			if after, _ := json.Marshal(d); !bytes.Equal(after, before) {
				t.Error("EncodeMail changed the data")
			}
			if cap(got) != len(got) {
				t.Errorf("buffer cap %d for %d bytes: not sized once", cap(got), len(got))
			}
		})
	}
}

// TestBadGraphContentListedWithReason: an attachment whose contentBytes
// Graph sent as text that is not base64 is listed without content and
// with the reason, never as broken base64 in the event.
func TestBadGraphContentListedWithReason(t *testing.T) {
	var atts []graph.Attachment
	if err := json.Unmarshal([]byte(`[{"@odata.type":"#microsoft.graph.fileAttachment","id":"a1","name":"x.pdf","size":3,"contentBytes":"not base64!"},
		{"@odata.type":"#microsoft.graph.fileAttachment","id":"a2","name":"y.txt","size":2,"contentBytes":"aGk="}]`), &atts); err != nil {
		t.Fatal(err)
	}
	msg := testMessage()
	msg.Attachments = atts
	_, d, err := MailDataOf(testSource(ArchivePolicy{}), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := d.Article.Attachments[0], d.Article.Attachments[1]
	if bad.Included || bad.ContentBase64 != "" || bad.SHA256 != "" || !strings.Contains(bad.Reason, "not valid base64") {
		t.Errorf("bad content listed as %+v", bad)
	}
	if !good.Included || good.ContentBase64 != "aGk=" || good.Size != 2 {
		t.Errorf("good content listed as %+v", good)
	}
}
