package graph

import (
	"bytes"
	"io"
)

// readBody reads a response body of up to limit bytes, and one more when
// there is more (the caller's too-large check). With a Content-Length
// (length >= 0) the buffer is sized once. Without one (a chunked answer:
// the simulator sends its large responses so, and Graph's documentation
// promises a Content-Length for none of its JSON answers) the body is read
// in chunks of growing size that are joined once at the end, instead of
// io.ReadAll's growth, which copies a large response several times and
// leaves the old buffers to the garbage collector.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	lr := io.LimitReader(r, limit+1)
	if length >= 0 && length <= limit {
		var buf bytes.Buffer
		buf.Grow(int(length) + bytes.MinRead) // room for the EOF read
		_, err := buf.ReadFrom(lr)
		return buf.Bytes(), err
	}
	var chunks [][]byte
	total, size := 0, 32<<10
	for {
		chunk := make([]byte, size)
		n, err := io.ReadFull(lr, chunk)
		if n > 0 {
			chunks = append(chunks, chunk[:n])
			total += n
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return join(chunks, total), err
		}
		size = min(size*2, 8<<20)
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	return join(chunks, total), nil
}

// join concatenates chunks into one buffer of exactly total bytes.
func join(chunks [][]byte, total int) []byte {
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out
}
