package graph

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"
)

// readJSON reads a 2xx JSON answer of at most limit bytes into res (with
// the attachment content lifted out when cl asks), reports the call
// (started at start), and recycles the chunks that were copied out of.
// retryable reports a failed read, which a retry may get whole.
func (c *Client) readJSON(cl call, resp *http.Response, res *response, limit int64, start time.Time) (_ *response, retryable bool, err error) {
	chunks, err := readChunks(resp.Body, resp.ContentLength, limit, &c.chunks)
	c.report(cl, resp.StatusCode, time.Since(start))
	segs := newSegments(chunks)
	switch {
	case int64(segs.total) > limit:
		err = fmt.Errorf("read %s: %w: more than %d bytes", cl.kind, ErrTooLarge, limit)
	case err != nil:
		return nil, true, fmt.Errorf("read %s response: %w", cl.kind, err)
	case cl.lift:
		res.body, res.lifted = liftChunks(chunks)
	default:
		res.body = segs.joined()
	}
	if err != nil || len(chunks) > 1 || res.lifted != nil {
		c.chunks.put(chunks) // copied out (or of no use): not res.body
	}
	if err != nil {
		return nil, false, err
	}
	return res, false, nil
}

// readChunks reads a response body of up to limit bytes, and one more when
// there is more. With a Content-Length (length >= 0) it is one buffer sized
// once. Without one (a chunked answer: the simulator sends its large
// responses so, and Graph's documentation promises a Content-Length for
// none of its JSON answers) the body is read in chunks of growing size,
// which the caller joins once (segments.joined) or reads as they are
// (liftChunks), instead of io.ReadAll's growth, which copies a large
// response several times and leaves the old buffers to the garbage
// collector. Every chunk but the last is full (32 KiB or more). Chunks
// come from pool (nil: allocated).
func readChunks(r io.Reader, length, limit int64, pool *chunkPool) ([][]byte, error) {
	lr := io.LimitReader(r, limit+1)
	if length >= 0 && length <= limit {
		var buf bytes.Buffer
		buf.Grow(int(length) + bytes.MinRead) // room for the EOF read
		_, err := buf.ReadFrom(lr)
		return [][]byte{buf.Bytes()}, err
	}
	var chunks [][]byte
	size := firstChunk
	for {
		chunk := pool.get(size)
		n, err := io.ReadFull(lr, chunk)
		if n > 0 {
			chunks = append(chunks, chunk[:n])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		size = min(size*2, lastChunk)
	}
}
