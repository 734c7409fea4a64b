package webhooks

import _ "embed"

// SchemaV1 is the JSON Schema (draft 2020-12) of version 1 events: the
// envelope and, selected by type, the data of each event type. Tests pin it
// against the Go types, so it and MailData and friends never drift apart.
//
//go:embed schema/event-v1.json
var SchemaV1 []byte
