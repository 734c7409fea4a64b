package recipe

import (
	"strings"
	"testing"
)

// TestTraceRedaction: what `deliveries test` prints keeps credentials out
// (headers, URL user info and secret parameters, JSON credential fields,
// secrets in URLs inside answers) and keeps what an operator checks.
func TestTraceRedaction(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RedactTraceURL("https://user:pw@rt.example.com/REST/2.0/tickets?query=Subject%3D%27x%27&token=abc123"),
			"https://rt.example.com/REST/2.0/tickets?query=Subject%3D%27x%27&token=redacted"},
		{RedactTraceURL("https://example.freshdesk.com/api/v2/contacts?email=a%40b.c"), "https://example.freshdesk.com/api/v2/contacts?email=a%40b.c"},
		{redactHeader("Authorization", "Token token=s3cret"), "Token [redacted]"},
		{redactHeader("Authorization", "Basic YWdlbnQ6dG9rZW4="), "Basic [redacted]"},
		{redactHeader("X-Api-Key", "s3cret"), "[redacted]"},
		{redactHeader("Content-Type", "application/json"), "application/json"},
		{traceBody("application/json", []byte(`{"user":{"password":"s3cret","name":"n"},"api_token":"t0k","link":"https://x.example/a?sig=abc&id=1"}`)),
			`{"user":{"password":"[redacted]","name":"n"},"api_token":"[redacted]","link":"https://x.example/a?id=1&sig=redacted"}`},
		{traceBody("application/zip", []byte{1, 2, 3}), "(application/zip, 3 bytes)"},
		{traceBody("multipart/form-data; boundary=x", []byte("--x")), "(multipart/form-data, 3 bytes)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
	}
	long := traceBody("text/plain", []byte(strings.Repeat("a", TraceBodyBytes+10)))
	if !strings.HasSuffix(long, "… (2010 bytes)") || len(long) > TraceBodyBytes+30 {
		t.Errorf("a long body is not cut: %d bytes, ends %q", len(long), long[len(long)-20:])
	}
}
