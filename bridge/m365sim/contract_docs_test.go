package m365sim

// Contract tests, simulator side, for the endpoints not covered by
// contract_test.go: the sim's answer to the request Microsoft documents has
// the documented status, headers and every documented property with the
// same JSON kind. Fixtures and their sources (repository, path, commit):
// bridge/graph/testdata/graphdocs/README.md and testdata/entra/README.md.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func graphDocText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "graph", "testdata", "graphdocs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantDocJSON checks a Graph JSON answer: status, Content-Type with
// odata.metadata=minimal, and the documented shape.
// nullable names properties that Microsoft's own samples show both as a
// value and as null: the sim may answer null for them.
func wantDocJSON(t *testing.T, resp *http.Response, b []byte, status int, fixture string, nullable ...string) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, documented %d: %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(ct, "odata.metadata=minimal") {
		t.Errorf("Content-Type %q", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("body: %v: %s", err, b)
	}
	want := graphDoc(t, fixture).(map[string]any)
	for _, k := range nullable {
		// "value[0].contentId": a property of the first collection item.
		obj, name := want, k
		if rest, ok := strings.CutPrefix(k, "value[0]."); ok {
			obj, name = want["value"].([]any)[0].(map[string]any), rest
		}
		if _, ok := obj[name]; ok {
			obj[name] = nil // assertShape: nil accepts any value
		}
	}
	assertShape(t, fixture, got, want)
	return got
}

func TestContractSimMatchesDocumentedMailEndpoints(t *testing.T) {
	f := newGraphFixture(t, Options{})
	mb := "alice@contoso.example"
	if _, err := f.sim.InjectMessage(mb, NewMessage{Subject: "Meet for lunch?", From: "Pat <pat@example.org>", Body: "hi there",
		Attachments: []NewAttachment{{Name: "q1.docx", ContentType: "application/octet-stream", Content: "PK"}}}); err != nil {
		t.Fatal(err)
	}
	id := f.sim.Messages(mb, "Inbox")[0].ID
	msgPath := "/v1.0/me/messages/" + url.PathEscape(id)

	t.Run("mailfolder-get.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox", f.aliceTok, nil)
		wantDocJSON(t, resp, b, 200, "mailfolder-get.json")
	})
	t.Run("user-list-mailfolders.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders", f.aliceTok, nil)
		wantDocJSON(t, resp, b, 200, "user-list-mailfolders.json")
	})
	t.Run("mailfolder-list-messages.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", "/v1.0/me/mailFolders/inbox/messages", f.aliceTok, nil)
		wantDocJSON(t, resp, b, 200, "mailfolder-list-messages.json")
	})
	t.Run("message-get.md example 1", func(t *testing.T) {
		resp, b := f.call(t, "GET", msgPath, f.aliceTok, nil)
		// isDeliveryReceiptRequested: false here, null in message-move.md's
		// sample (and in Graph's answers for received mail).
		wantDocJSON(t, resp, b, 200, "message-get.json", "isDeliveryReceiptRequested")
		if resp.Header.Get("Preference-Applied") != "" {
			t.Errorf("Preference-Applied %q without a body-content-type preference", resp.Header.Get("Preference-Applied"))
		}
	})
	t.Run("message-get.md example 3 (Preference-Applied)", func(t *testing.T) {
		resp, b := f.call(t, "GET", msgPath+"?$select=subject,body,bodyPreview,uniqueBody", f.aliceTok, nil,
			"Prefer", `outlook.body-content-type="text"`)
		got := wantDocJSON(t, resp, b, 200, "message-get-text.json")
		if pa := resp.Header.Get("Preference-Applied"); pa != `outlook.body-content-type="text"` {
			t.Errorf("Preference-Applied %q, documented %q", pa, `outlook.body-content-type="text"`)
		}
		if body, _ := got["body"].(map[string]any); body["contentType"] != "text" {
			t.Errorf("body %v, want contentType text", got["body"])
		}
	})
	t.Run("message-get.md example 4 ($value)", func(t *testing.T) {
		resp, b := f.call(t, "GET", msgPath+"/$value", f.aliceTok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		// Documented: "Content-type: text/plain", the MIME text as the body.
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, documented text/plain", ct)
		}
		if !strings.Contains(string(b), "MIME-Version: 1.0") || !strings.Contains(string(b), "Subject: Meet for lunch?") {
			t.Errorf("body is not the message's MIME: %.200s", b)
		}
		if !strings.Contains(graphDocText(t, "message-get-mime.txt"), "MIME-Version: 1.0") {
			t.Error("fixture lost its MIME-Version")
		}
	})
	var attID string
	t.Run("message-list-attachments.md", func(t *testing.T) {
		resp, b := f.call(t, "GET", msgPath+"/attachments", f.aliceTok, nil)
		// The sample's "contentId": "null" and "contentLocation-value" are
		// placeholders; attachment-get.md example 1 shows both as null.
		got := wantDocJSON(t, resp, b, 200, "message-list-attachments.json", "value[0].contentId", "value[0].contentLocation")
		v, _ := got["value"].([]any)
		if len(v) != 1 {
			t.Fatalf("value %v", got["value"])
		}
		a := v[0].(map[string]any)
		attID, _ = a["id"].(string)
		// The docs sample writes "microsoft.graph.fileAttachment" without
		// the '#'; attachment-get.md and Graph's answers carry it.
		if a["@odata.type"] != "#microsoft.graph.fileAttachment" {
			t.Errorf("@odata.type %v", a["@odata.type"])
		}
	})
	t.Run("attachment-get.md example 5 ($value)", func(t *testing.T) {
		if attID == "" {
			t.Skip("no attachment id")
		}
		resp, b := f.call(t, "GET", msgPath+"/attachments/"+url.PathEscape(attID)+"/$value", f.aliceTok, nil)
		// Documented: 200 with the raw bytes of the file.
		if resp.StatusCode != 200 || string(b) != "PK" {
			t.Errorf("status %d body %q, want 200 and the file's bytes", resp.StatusCode, b)
		}
	})
	t.Run("message-update.md (isRead)", func(t *testing.T) {
		resp, b := f.call(t, "PATCH", msgPath, f.aliceTok, map[string]any{"isRead": true})
		got := wantDocJSON(t, resp, b, 200, "message-update.json")
		if got["isRead"] != true {
			t.Errorf("isRead %v after PATCH", got["isRead"])
		}
	})
	t.Run("message-reply.md example 1", func(t *testing.T) {
		resp, b := f.call(t, "POST", msgPath+"/reply", f.aliceTok, map[string]any{
			"message": map[string]any{"toRecipients": []any{map[string]any{"emailAddress": map[string]any{
				"address": "samanthab@contoso.onmicrosoft.com", "name": "Samantha Booth"}}}},
			"comment": "Samantha, Randi, would you name the group please?"})
		if resp.StatusCode != 202 || len(b) != 0 {
			t.Errorf("reply: %d %q, documented 202 with no body", resp.StatusCode, b)
		}
	})
}

// entraDocQuery parses a documented URL written one parameter per line.
func entraDocQuery(t *testing.T, name string) url.Values {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "entra", name))
	if err != nil {
		t.Fatal(err)
	}
	_, q, _ := strings.Cut(strings.Join(strings.Fields(string(b)), ""), "?")
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestContractSimMatchesDocumentedEntraEndpoints(t *testing.T) {
	f := newEntraFixture(t, Options{}, nil)
	// The documented request's parameters, with this sim's app, redirect
	// URI and scopes in place of the sample's.
	p := entraDocQuery(t, "authorize-request-docs.txt")
	p.Set("client_id", f.seeded.ClientID)
	p.Set("redirect_uri", DefaultRedirectURI)
	p.Set("scope", testScopes)
	t.Run("v2-oauth2-auth-code-flow.md successful response", func(t *testing.T) {
		q := cloneValues(p)
		q.Set("sim_auto", "1")
		resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, q))
		got := f.redirectParams(resp)
		for name := range entraDocQuery(t, "authorize-redirect-docs.txt") {
			if got.Get(name) == "" {
				t.Errorf("redirect lacks documented %s: %v", name, got)
			}
		}
		if got.Get("state") != "12345" {
			t.Errorf("state %q, documented: the request's", got.Get("state"))
		}
	})
	t.Run("v2-oauth2-auth-code-flow.md error response", func(t *testing.T) {
		q := cloneValues(p)
		q.Set("sim_auto", "decline")
		resp, _ := f.get(f.authorizeURL(DefaultTenantDomain, q))
		got := f.redirectParams(resp)
		want := entraDocQuery(t, "authorize-error-docs.txt")
		for name := range want {
			if got.Get(name) == "" {
				t.Errorf("redirect lacks documented %s: %v", name, got)
			}
		}
		if got.Get("error") != want.Get("error") || got.Get("code") != "" {
			t.Errorf("error %q code %q, documented error=%s and no code", got.Get("error"), got.Get("code"), want.Get("error"))
		}
	})
	t.Run("v2-protocols-oidc.md openid-configuration", func(t *testing.T) {
		resp, body := f.get(f.srv.URL + "/" + DefaultTenantDomain + "/v2.0/.well-known/openid-configuration")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		// The sample is "truncated for brevity": every documented property,
		// same JSON kind; the sim's further ones (issuer, …) are allowed.
		b, err := os.ReadFile(filepath.Join("testdata", "entra", "openid-configuration-docs.json"))
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		assertShape(t, "openid-configuration", got, want)
		// Its jwks_uri answers with the keys.
		jr, jb := f.get(got["jwks_uri"].(string))
		var set struct{ Keys []map[string]any }
		if jr.StatusCode != 200 || json.Unmarshal([]byte(jb), &set) != nil || len(set.Keys) == 0 {
			t.Fatalf("jwks: %d %s", jr.StatusCode, jb)
		}
		wantShape(t, map[string]any{"keys": []any{set.Keys[0]}}, "jwks.json")
	})
}
