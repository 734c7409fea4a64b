package graph

// Contract tests, client side, for the send path by draft (drafts.go,
// upload.go): each fake server checks the client's request against the
// request Microsoft documents and answers with the documented response
// (testdata/graphdocs; README there gives repository, path and commit).
// The simulator's side is bridge/m365sim/contract_send_docs_test.go.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// docJSON decodes a fixture into generic JSON.
func docJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(docFixture(t, name), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// readJSONRequest decodes a request body into generic JSON.
func readJSONRequest(t *testing.T, r *http.Request) map[string]any {
	t.Helper()
	b, _ := io.ReadAll(r.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Errorf("request body %q: %v", b, err)
	}
	return v
}

// wantDocumentedRequest checks that the client's request body carries
// every property of the documented request with the same value (further
// properties, such as the extended property tag, are allowed).
func wantDocumentedRequest(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, wv := range want {
		if gv, ok := got[k]; !ok || !reflect.DeepEqual(gv, wv) {
			t.Errorf("request %s = %v, documented %v", k, gv, wv)
		}
	}
}

func TestContractClientSendPathMatchesDocuments(t *testing.T) {
	ctx := context.Background()
	tag := ExtendedProperty{ID: NamedStringProperty("{66f5a359-4659-4830-9070-00047ec6ac6e}", "Color"), Value: "Green"}

	t.Run("user-post-messages.md example 1", func(t *testing.T) {
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "POST" || r.URL.Path != "/v1.0/me/messages" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("request %s %s %q, documented POST /me/messages application/json", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			}
			got := readJSONRequest(t, r)
			wantDocumentedRequest(t, got, docJSON(t, "user-post-messages-request.json"))
			// The tag travels as singleValueLegacyExtendedProperty {id, value}.
			if p, _ := got["singleValueExtendedProperties"].([]any); len(p) != 1 || !reflect.DeepEqual(p[0], map[string]any{"id": tag.ID, "value": tag.Value}) {
				t.Errorf("singleValueExtendedProperties %v", got["singleValueExtendedProperties"])
			}
			serveDoc(w, http.StatusCreated, docFixture(t, "user-post-messages.json"))
		})
		msg := OutgoingMessage{Subject: "Did you see last night's game?", Importance: "Low",
			Body:         &ItemBody{ContentType: "HTML", Content: "They were <b>awesome</b>!"},
			ToRecipients: []Recipient{{EmailAddress: EmailAddress{Address: "AdeleV@contoso.onmicrosoft.com"}}}}
		d, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).CreateDraft(ctx, msg, nil, []ExtendedProperty{tag})
		if err != nil {
			t.Fatal(err)
		}
		want := Draft{ID: "AAMkADNlNYjSAAA=", InternetMessageID: "<MWHPR1301MB@MWHPR1301MB.namprd13.prod.outlook.com>", IsDraft: true, ParentFolderID: "AAMkADNlNWAAAAAAEPAAA="}
		if d != want {
			t.Errorf("draft %+v, want %+v", d, want)
		}
	})

	t.Run("message-createreply.md", func(t *testing.T) {
		for _, tc := range []struct {
			fixture string
			status  int
			wantID  string // "": the client must refuse the answer
		}{
			// Example 2's answer: 201 with the draft.
			{"message-createreply-mime.json", http.StatusCreated, "AAMkADA1MTAAAAqldOAAA="},
			// Example 1's answer, verbatim: "200 OK" (the page's text says
			// 201) and no id. Without an id there is no draft to fill and
			// send: the client says so instead of sending nothing.
			{"message-createreply.json", http.StatusOK, ""},
		} {
			t.Run(tc.fixture, func(t *testing.T) {
				c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
					if r.Method != "POST" || r.URL.Path != "/v1.0/me/messages/AAMkADA1MTAAAAqldOAAA=/createReply" {
						t.Errorf("request %s %s", r.Method, r.URL.Path)
					}
					// Documented: JSON with a message (or a comment, not
					// both); the bridge sends the message with its tag only.
					got := readJSONRequest(t, r)
					m, _ := got["message"].(map[string]any)
					if _, both := got["comment"]; both || m == nil || m["body"] != nil {
						t.Errorf("createReply body %v: want message without body, no comment", got)
					}
					serveDoc(w, tc.status, docFixture(t, tc.fixture))
				})
				d, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).CreateReplyDraft(ctx, "AAMkADA1MTAAAAqldOAAA=", []ExtendedProperty{tag})
				switch {
				case tc.wantID == "" && (err == nil || !strings.Contains(err.Error(), "no message id")):
					t.Errorf("draft %+v, err %v: want an error saying the answer holds no id", d, err)
				case tc.wantID != "" && (err != nil || d.ID != tc.wantID || !d.IsDraft):
					t.Errorf("draft %+v, err %v", d, err)
				}
			})
		}
	})

	t.Run("message-update.md", func(t *testing.T) {
		// The updatable properties of the page's "Request body" table.
		updatable := map[string]bool{"bccRecipients": true, "body": true, "categories": true, "ccRecipients": true, "flag": true,
			"from": true, "importance": true, "inferenceClassification": true, "internetMessageId": true,
			"isDeliveryReceiptRequested": true, "isRead": true, "isReadReceiptRequested": true, "multiValueExtendedProperties": true,
			"replyTo": true, "sender": true, "singleValueExtendedProperties": true, "subject": true, "toRecipients": true}
		doc := docJSON(t, "message-update-request.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "PATCH" || r.URL.Path != "/v1.0/me/messages/AAMkADNlNYjSAAA=" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			got := readJSONRequest(t, r)
			for k := range got {
				if !updatable[k] {
					t.Errorf("PATCH sets %q, which message-update.md does not list as updatable", k)
				}
			}
			delete(doc, "inferenceClassification") // the bridge leaves it alone
			wantDocumentedRequest(t, got, doc)
			serveDoc(w, http.StatusOK, docFixture(t, "message-update.json"))
		})
		err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).UpdateDraft(ctx, "AAMkADNlNYjSAAA=",
			OutgoingMessage{Subject: "subject-value", Body: &ItemBody{ContentType: "", Content: "content-value"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("message-send.md", func(t *testing.T) {
		// Documented: "Content-Length: 0. Required", no body; 202 with none.
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Method != "POST" || r.URL.Path != "/v1.0/me/messages/AAMkADNlNYjSAAA=/send" || r.ContentLength != 0 || len(b) != 0 {
				t.Errorf("request %s %s length %d body %q", r.Method, r.URL.Path, r.ContentLength, b)
			}
			w.WriteHeader(http.StatusAccepted)
		})
		if err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).SendDraft(ctx, "AAMkADNlNYjSAAA="); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("message-delete.md", func(t *testing.T) {
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if r.Method != "DELETE" || r.URL.Path != "/v1.0/me/messages/AAMkADNlNYjSAAA=" || len(b) != 0 {
				t.Errorf("request %s %s body %q", r.Method, r.URL.Path, b)
			}
			w.WriteHeader(http.StatusNoContent)
		})
		if err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).DeleteDraft(ctx, "AAMkADNlNYjSAAA="); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("message-post-attachments.md", func(t *testing.T) {
		// A file under 3 MB goes in one POST, as the page's example.
		data := []byte("GIF87a\x10\x06\x04\x00")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "POST" || r.URL.Path != "/v1.0/me/messages/AAMkpsDRVK/attachments" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			}
			got := readJSONRequest(t, r)
			want := docJSON(t, "message-post-attachments-request.json")
			// The documented "contentBytes" is a placeholder; ours is the
			// file's base64.
			if got["contentBytes"] != base64.StdEncoding.EncodeToString(data) {
				t.Errorf("contentBytes %v", got["contentBytes"])
			}
			delete(want, "contentBytes")
			wantDocumentedRequest(t, got, want)
			serveDoc(w, http.StatusCreated, docFixture(t, "message-post-attachments.json"))
		})
		if err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).AddAttachment(ctx, "AAMkpsDRVK", Attachment{Name: "smile", ContentType: "image/gif", ContentBytes: data}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("attachment-createuploadsession.md and outlook-large-attachments.md", func(t *testing.T) {
		// The documented file: "flower", 3483322 bytes. The documented
		// session answers nextExpectedRanges ["2097152"] to the first PUT
		// (whatever its size), and the documented final PUT is
		// bytes 2097152-3483321/3483322, answered 201 with a Location.
		const size = 3483322
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var puts atomic.Int32
		var srvURL string
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == "POST":
				if r.URL.Path != "/v1.0/me/messages/AAMkADI5MAAIT3drCAAA=/attachments/createUploadSession" {
					t.Errorf("request %s %s", r.Method, r.URL.Path)
				}
				got := readJSONRequest(t, r)
				want := docJSON(t, "attachment-createuploadsession-request.json")
				gi, _ := got["AttachmentItem"].(map[string]any)
				wantDocumentedRequest(t, gi, want["AttachmentItem"].(map[string]any))
				// The documented uploadUrl, pointed at this server.
				doc := strings.Replace(string(docFixture(t, "attachment-createuploadsession.json")), "https://outlook.office.com", srvURL, 1)
				serveDoc(w, http.StatusCreated, []byte(doc))
			case r.Method == "PUT":
				// Documented: no Authorization, Content-Type
				// application/octet-stream, Content-Length, Content-Range.
				b, _ := io.ReadAll(r.Body)
				if r.Header.Get("Authorization") != "" || r.Header.Get("Content-Type") != "application/octet-stream" ||
					r.URL.Query().Get("authtoken") != "eyJhbGciOiJSUzI1NiIsImtpZCI6IktmYUNIUlN6bllHMmNI" ||
					!strings.HasSuffix(r.URL.Path, "/AttachmentSessions('AAMkADI5MAAIT3k0uAAA=')") {
					t.Errorf("PUT %s auth %q type %q", r.URL, r.Header.Get("Authorization"), r.Header.Get("Content-Type"))
				}
				var start, end, total int
				if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil ||
					total != size || int64(len(b)) != r.ContentLength || len(b) != end-start+1 || string(b) != string(data[start:end+1]) {
					t.Errorf("PUT Content-Range %q with %d bytes (length %d)", r.Header.Get("Content-Range"), len(b), r.ContentLength)
				}
				switch puts.Add(1) {
				case 1:
					if start != 0 {
						t.Errorf("first PUT starts at %d", start)
					}
					serveDoc(w, http.StatusOK, docFixture(t, "upload-put-first.json"))
				default:
					if got := r.Header.Get("Content-Range"); got != "bytes 2097152-3483321/3483322" {
						t.Errorf("final PUT Content-Range %q, documented bytes 2097152-3483321/3483322", got)
					}
					w.Header().Set("Location", "https://outlook.office.com/api/v2.0/Users('a8e8e219-4931-95c1-b73d-62626fd79c32@72aa88bf-76f0-494f-91ab-2d7cd730db47')/Messages('AAMkADI5MAAIT3drCAAA=')/Attachments('AAMkADI5MAAIT3drCAAABEgAQANAqbAe7qaROhYdTnUQwXm0=')")
					w.Header().Set("Content-Length", "0")
					w.WriteHeader(http.StatusCreated)
				}
			default:
				t.Errorf("request %s %s", r.Method, r.URL)
			}
		})
		srvURL = c.BaseURL
		err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).AddAttachment(ctx, "AAMkADI5MAAIT3drCAAA=", Attachment{Name: "flower", ContentBytes: data})
		if err != nil {
			t.Fatal(err)
		}
		if n := puts.Load(); n != 2 {
			t.Errorf("%d PUTs, documented 2", n)
		}
	})

	t.Run("singlevaluelegacyextendedproperty-get.md request 2", func(t *testing.T) {
		// The documented $filter, decoded, with its id and value.
		lines := strings.Split(strings.TrimSpace(string(docFixture(t, "singlevaluelegacyextendedproperty-get-requests.txt"))), "\n")
		du, err := url.Parse(strings.TrimPrefix(lines[1], "GET "))
		if err != nil {
			t.Fatal(err)
		}
		wantFilter := du.Query().Get("$filter")
		// Response 2 is "similar to … getting a message collection" and
		// not shown: the documented message of response 1 in a collection.
		one := docFixture(t, "singlevaluelegacyextendedproperty-get-expand.json")
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || r.URL.Path != "/v1.0/me/mailFolders/sentitems/messages" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			if got := r.URL.Query().Get("$filter"); got != wantFilter {
				t.Errorf("$filter %q, documented %q", got, wantFilter)
			}
			serveDoc(w, http.StatusOK, []byte(`{"value":[`+string(one)+`]}`))
		})
		d, err := c.Mailbox(Mailbox{}, staticToken("a.b.c")).FindByProperty(ctx, "sentitems", tag.ID, tag.Value)
		if err != nil || d == nil || d.ID != "AAMkAGE1M2_bs88AACHsLqWAAA=" {
			t.Errorf("found %+v, %v", d, err)
		}
	})
}
