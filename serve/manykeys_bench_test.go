package serve

import (
	"bytes"
	"fmt"
	"testing"
)

// manyEntries is a JSON body of about size bytes: head, then tiny entries
// made by entry(i), comma-separated, then tail.
func manyEntries(size int, head, tail string, entry func(i int) string) []byte {
	var b bytes.Buffer
	b.WriteString(head)
	for i := 0; b.Len()+len(tail)+32 < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(entry(i))
	}
	b.WriteString(tail)
	return b.Bytes()
}

// BenchmarkRefuseManyEntries is what a body within limits.max_body_bytes
// (the default, 1 MiB) of tiny meta keys or messages costs before
// limits.max_meta_keys or max_messages refuses it: the caps count after
// the whole body is decoded.
func BenchmarkRefuseManyEntries(b *testing.B) {
	lim := DefaultConfig().Limits
	size := int(lim.MaxBodyBytes)
	key := func(i int) string { return fmt.Sprintf(`"%x":""`, i) }
	msg := func(int) string { return `{"role":"u","content":""}` }
	for _, tc := range []struct {
		name   string
		body   []byte
		decode func([]byte) error
	}{
		{"feedback meta keys", manyEntries(size, `{"request_id":"r","model":"m","score":1,"meta":{`, `}}`, key),
			func(body []byte) error { _, err := decodeFeedback(body, lim); return err }},
		{"feedback messages", manyEntries(size, `{"request_id":"r","model":"m","score":1,"messages":[`, `]}`, msg),
			func(body []byte) error { _, err := decodeFeedback(body, lim); return err }},
		{"route meta keys", manyEntries(size, `{"prompt":"p","meta":{`, `}}`, key),
			func(body []byte) error { _, err := decodeRoute(body, lim); return err }},
		{"route messages", manyEntries(size, `{"messages":[`, `]}`, msg),
			func(body []byte) error { _, err := decodeRoute(body, lim); return err }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if err := tc.decode(tc.body); err == nil {
				b.Fatal("the body was not refused")
			} else {
				b.Log(len(tc.body), "bytes:", err)
			}
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				tc.decode(tc.body)
			}
		})
	}
}
