package graph

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestAttachmentContentKeepsGraphBase64: contentBytes stays Graph's text
// when it is canonical base64; text that decodes but is not canonical (line
// breaks, non-zero pad bits) becomes the canonical text of the same bytes,
// as decoding and re-encoding gave before; text that does not decode is
// kept out, with ErrBadContent.
func TestAttachmentContentKeepsGraphBase64(t *testing.T) {
	for _, tt := range []struct {
		name, json, wantB64, wantBytes string
		bad                            bool
	}{
		{"canonical", `"aGVsbG8gd29ybGQ="`, "aGVsbG8gd29ybGQ=", "hello world", false},
		{"escaped slash", `"Pz8\/"`, "Pz8/", "???", false},
		{"line breaks", `"aGVsbG8g\r\nd29ybGQ="`, "aGVsbG8gd29ybGQ=", "hello world", false},
		{"two bytes", `"aGk="`, "aGk=", "hi", false},
		{"non-zero pad bits, lenient", `"aGl="`, "aGk=", "hi", false},
		{"empty", `""`, "", "", false},
		{"not base64", `"contentBytes-value"`, "", "", true},
		{"no padding", `"aGk"`, "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a Attachment
			if err := json.Unmarshal([]byte(`{"name":"x","contentBytes":`+tt.json+`}`), &a); err != nil {
				t.Fatal(err)
			}
			c := a.Content
			if c == nil || a.ContentBytes != nil || a.Name != "x" {
				t.Fatalf("attachment %+v: want Content and no ContentBytes", a)
			}
			if tt.bad {
				if !errors.Is(c.Err, ErrBadContent) || c.Base64 != "" || a.Bytes() != nil {
					t.Errorf("content %+v: want ErrBadContent and no content", c)
				}
				return
			}
			if c.Err != nil || c.Base64 != tt.wantB64 || c.Size != int64(len(tt.wantBytes)) ||
				c.SHA256 != sha256.Sum256([]byte(tt.wantBytes)) || string(a.Bytes()) != tt.wantBytes {
				t.Errorf("content %+v, bytes %q; want %q for %q", c, a.Bytes(), tt.wantB64, tt.wantBytes)
			}
		})
	}
	var none Attachment
	if err := json.Unmarshal([]byte(`{"name":"x","contentBytes":null}`), &none); err != nil || none.Content != nil {
		t.Errorf("null contentBytes: %+v, %v; want no content", none, err)
	}
}

// TestLiftedContentDecodesAsEncodingJSON: attachments decoded from a
// response with content lifted out (liftContent, resolveContent) are the
// attachments encoding/json alone gives, for content in the places and
// spellings that must be lifted and those that must not: a key-like text
// inside a string, escapes, whitespace, small values.
func TestLiftedContentDecodesAsEncodingJSON(t *testing.T) {
	big := strings.Repeat("QUJD", 600) // 2,400 bytes of base64
	body := `{"value":[` +
		`{"id":"1","contentBytes":"` + big + `"},` +
		`{"id":"2","name":"a\",\"contentBytes\":\"` + big + `","contentBytes":"aGk="},` +
		`{"id":"3", "contentBytes" : "` + big + `"},` +
		`{"id":"4","contentBytes":"` + big[:1000] + `\/` + big[:1000] + `"},` +
		`{"id":"5","name":"{\"contentBytes\":\"` + big + `\"}","contentBytes":null},` +
		`{"id":"6","contentBytes":"not base64 ` + big + `"},` +
		`{"id":"7","x\"contentBytes":"` + big + `","contentBytes":"aGk="}]}`
	var want, got struct{ Value []Attachment }
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	small, cut := liftContent([]byte(body))
	if len(cut) != 2 || len(small) > len(body)-2*len(big)+100 {
		t.Errorf("lifted %d values, %d bytes left of %d; want those of ids 1 and 6 lifted", len(cut), len(small), len(body))
	}
	if err := json.Unmarshal(small, &got); err != nil {
		t.Fatal(err)
	}
	resolveContent(got.Value, cut)
	checkAttachments(t, got.Value, want.Value)
	// The same response read in chunks (a chunked answer), split at every
	// place of a key and its value's quotes and at many chunk sizes, lifts
	// the same values and leaves the same JSON.
	for _, chunks := range chunkings(body) {
		gotSmall, gotCut := liftChunks(chunks)
		if len(gotCut) != len(cut) || len(gotSmall) != len(small) {
			t.Fatalf("in %d chunks: lifted %d values, %d bytes left; want %d, %d", len(chunks), len(gotCut), len(gotSmall), len(cut), len(small))
		}
		got.Value = nil
		if err := json.Unmarshal(gotSmall, &got); err != nil {
			t.Fatalf("in %d chunks: %v", len(chunks), err)
		}
		resolveContent(got.Value, gotCut)
		checkAttachments(t, got.Value, want.Value)
	}
}

// chunkings splits body as readChunks may: into chunks of one size (all
// full but the last, at least as long as liftKey), and in two at every
// offset around each occurrence of "contentBytes".
func chunkings(body string) [][][]byte {
	var out [][][]byte
	for _, size := range []int{len(liftKey), len(liftKey) + 1, 19, 23, 31, 64, 1000, 4096, len(body)} {
		var chunks [][]byte
		for i := 0; i < len(body); i += size {
			chunks = append(chunks, []byte(body[i:min(i+size, len(body))]))
		}
		out = append(out, chunks)
	}
	for at := 0; ; {
		k := strings.Index(body[at:], "contentBytes")
		if k < 0 {
			break
		}
		k += at
		for cut := max(k-2, len(liftKey)); cut <= k+len(liftKey)+2 && cut < len(body); cut++ {
			out = append(out, [][]byte{[]byte(body[:cut]), []byte(body[cut:])})
		}
		at = k + 1
	}
	return out
}

func checkAttachments(t *testing.T, got, want []Attachment) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d attachments, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Name != w.Name || (g.Content == nil) != (w.Content == nil) {
			t.Errorf("attachment %d = %+v, want %+v", i, g, w)
			continue
		}
		if w.Content != nil && (g.Content.Base64 != w.Content.Base64 || g.Content.SHA256 != w.Content.SHA256 ||
			(g.Content.Err == nil) != (w.Content.Err == nil)) {
			t.Errorf("attachment %s content %+v, want %+v", w.ID, g.Content, w.Content)
		}
	}
}

// TestReadBody: with and without a Content-Length (also a wrong one), the
// body comes back whole, and one byte more than the limit when there is
// more.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("0123456789", 30_000) // 300,000 bytes: several chunks
	for _, tt := range []struct {
		name          string
		length, limit int64
		want          int
	}{
		{"content-length", int64(len(body)), 1 << 20, len(body)},
		{"chunked", -1, 1 << 20, len(body)},
		{"chunked over the limit", -1, 100_000, 100_001},
		{"content-length over the limit", int64(len(body)), 100_000, 100_001},
		{"content-length too small", 10, 1 << 20, len(body)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chunks, err := readChunks(strings.NewReader(body), tt.length, tt.limit, nil)
			for i, c := range chunks[:len(chunks)-1] {
				if len(c) < 32<<10 {
					t.Errorf("chunk %d of %d holds %d bytes; want every chunk but the last full (32 KiB or more)", i, len(chunks), len(c))
				}
			}
			got := newSegments(chunks).joined()
			if err != nil || len(got) != tt.want || string(got) != body[:tt.want] {
				t.Errorf("read %d bytes, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

// TestReadBodyFromRecycledChunks: responses read into recycled chunks hold
// their own bytes only, whatever a longer response left in the buffers.
func TestReadBodyFromRecycledChunks(t *testing.T) {
	var pool chunkPool
	for i, size := range []int{300_000, 40_000, 300_000, 100, 70_000} {
		body := strings.Repeat(string(rune('a'+i)), size)
		chunks, err := readChunks(strings.NewReader(body), -1, 1<<20, &pool)
		if got := string(newSegments(chunks).joined()); err != nil || got != body {
			t.Fatalf("response %d (%d bytes): read %d bytes, %v; want its own %d", i, size, len(got), err, size)
		}
		pool.put(chunks)
	}
}
