package graph

import (
	"math/bits"
	"sync"
)

// Chunk sizes readChunks reads a response without a Content-Length in:
// firstChunk, then doubling up to lastChunk.
const (
	firstChunk = 32 << 10
	lastChunk  = 8 << 20
)

// chunkPool recycles readChunks' buffers once a response was copied out of
// them (liftChunks copies what it keeps; a response of several chunks is
// joined into a buffer of its own), so the next large response is read
// into memory already in use instead of fresh pages the runtime must zero
// and the kernel fault in. One sync.Pool per chunk size; the runtime
// empties them over two collections when they are not used.
type chunkPool struct {
	sizes [chunkClasses]sync.Pool
}

// chunkClasses is how many chunk sizes there are: 32 KiB << 0 … 8 MiB.
const chunkClasses = 9

// class is the index of a chunk size in sizes, or -1.
func (p *chunkPool) class(size int) int {
	if size < firstChunk || size > lastChunk || size&(size-1) != 0 {
		return -1
	}
	return bits.TrailingZeros(uint(size / firstChunk))
}

// get returns a buffer of size bytes (not zeroed when recycled: readChunks
// only keeps what it read into it).
func (p *chunkPool) get(size int) []byte {
	if p != nil {
		if c := p.class(size); c >= 0 {
			if b, ok := p.sizes[c].Get().(*[]byte); ok {
				return (*b)[:size]
			}
		}
	}
	return make([]byte, size)
}

// put recycles chunks, which no one may use afterwards.
func (p *chunkPool) put(chunks [][]byte) {
	if p == nil {
		return
	}
	for _, b := range chunks {
		if c := p.class(cap(b)); c >= 0 {
			b = b[:cap(b)]
			p.sizes[c].Put(&b)
		}
	}
}
