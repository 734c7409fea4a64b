package mailsync

import (
	"github.com/m365bridge/m365bridge/bridge/graph"
)

const (
	// pageReserveBytes is what a delta page claims of RunnerConfig.Memory
	// before it is read, when its weight is not known yet.
	pageReserveBytes = 1 << 20
	// buildCopies is how many times a message's content is in memory at
	// the peak of building its event: the decoded attachment bytes, their
	// base64 in the event (4/3) and the encoded envelope (4/3 again).
	buildCopies = 4
)

// weigh is the bytes a message holds: its body, text body and attachment
// content as read from Graph.
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
