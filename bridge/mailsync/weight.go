package mailsync

import (
	"github.com/m365bridge/m365bridge/bridge/graph"
)

const (
	// pageReserveBytes is what a delta page claims of RunnerConfig.Memory
	// before it is read, when its weight is not known yet.
	pageReserveBytes = 1 << 20
	// buildCopies is how many times a message's content (as weighed: base64
	// for attachments, as Graph sends it) is in memory at the peak of
	// building its event: the Graph response it came in (until decoded),
	// the base64 kept from it (graph.Content, shared by the event's data,
	// not copied), and the encoded envelope (event.EncodeMail, one buffer).
	// It was 4 in decoded bytes (about 5.3 in base64) when content was
	// decoded and re-encoded.
	buildCopies = 3
)

// weigh is the bytes a message holds: its body, text body and attachment
// content as read from Graph (Graph's base64, or bytes read raw).
func weigh(m *graph.Message) int64 {
	var n int64
	if m.Body != nil {
		n += int64(len(m.Body.Content))
	}
	if m.TextBody != nil {
		n += int64(len(m.TextBody.Content))
	}
	for i := range m.Attachments {
		n += int64(len(m.Attachments[i].ContentBytes))
		if c := m.Attachments[i].Content; c != nil {
			n += int64(len(c.Base64))
		}
	}
	return n
}
