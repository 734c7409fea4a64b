package graph

import (
	"bytes"
	"io"
)

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
