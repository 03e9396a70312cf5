package workflows

import (
	"encoding/binary"
	"hash/fnv"
)

// dedupeCapacity is how many distinct events a message remembers to recognise
// an ESP's retry: the last 4,096 (32 KB carried across continue-as-new). An
// older event delivered again counts once more; status events are idempotent
// anyway (message.Next), and the API drops recent duplicates before they
// become signals.
const dedupeCapacity = 4096

// dedupe is a bounded memory of event dedupe keys, as 64-bit FNV-1a hashes in
// a ring: the oldest is forgotten first. Deterministic, as workflow code must be.
type dedupe struct {
	set  map[uint64]bool
	ring []uint64
	next int // where the next hash goes once the ring is full
}

func hashKey(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

func (d *dedupe) has(key string) bool { return d.set[hashKey(key)] }

func (d *dedupe) add(key string) {
	h := hashKey(key)
	if d.set[h] {
		return
	}
	d.set[h] = true
	if len(d.ring) < dedupeCapacity {
		d.ring = append(d.ring, h)
		return
	}
	delete(d.set, d.ring[d.next])
	d.ring[d.next] = h
	d.next = (d.next + 1) % dedupeCapacity
}

// pack is the ring, oldest first, 8 bytes a hash.
func (d *dedupe) pack() []byte {
	out := make([]byte, 0, 8*len(d.ring))
	for i := range d.ring {
		out = binary.BigEndian.AppendUint64(out, d.ring[(d.next+i)%len(d.ring)])
	}
	return out
}

// unpackDedupe is the dedupe memory pack wrote (empty for nil).
func unpackDedupe(packed []byte) *dedupe {
	d := &dedupe{set: map[uint64]bool{}}
	for i := 0; i+8 <= len(packed); i += 8 {
		h := binary.BigEndian.Uint64(packed[i:])
		if !d.set[h] {
			d.set[h] = true
			d.ring = append(d.ring, h)
		}
	}
	if len(d.ring) > dedupeCapacity {
		for _, h := range d.ring[:len(d.ring)-dedupeCapacity] {
			delete(d.set, h)
		}
		d.ring = d.ring[len(d.ring)-dedupeCapacity:]
	}
	return d
}
