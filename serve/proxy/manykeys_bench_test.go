package proxy

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkRefuseManyEntries is what a request of tiny metadata keys,
// messages (or Responses input items, or legacy completion prompts) or
// tools costs to refuse by the
// proxy's caps (Deps.MaxMetaKeys and MaxMessages, the server's
// limits.max_meta_keys and max_messages, and max_tools, at their
// defaults), at 1 MiB and at max_request_bytes' default, 16 MiB.
func BenchmarkRefuseManyEntries(b *testing.B) {
	h := &Handler{maxMetaKeys: 256, maxMessages: 4096}
	c := caps{h.maxMetaKeys, h.maxMessages, DefaultMaxTools}
	key := func(i int) string { return fmt.Sprintf(`"%x":""`, i) }
	msg := func(int) string { return `{"role":"user","content":"x"}` }
	tool := func(int) string { return `{}` }
	build := func(size int, head, tail string, entry func(int) string) []byte {
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
	for _, size := range []int{1 << 20, DefaultMaxBodyBytes} {
		for _, tc := range []struct {
			name string
			a    *api
			body []byte
		}{
			{"metadata keys", apiChat, build(size, `{"model":"auto","messages":[{"role":"user","content":"hi"}],"metadata":{`, `}}`, key)},
			{"messages", apiChat, build(size, `{"model":"auto","messages":[`, `]}`, msg)},
			{"responses input items", apiResponses, build(size, `{"model":"auto","input":[`, `]}`, msg)},
			{"tools", apiChat, build(size, `{"model":"auto","messages":[{"role":"user","content":"hi"}],"tools":[`, `]}`, tool)},
			{"functions", apiChat, build(size, `{"model":"auto","messages":[{"role":"user","content":"hi"}],"functions":[`, `]}`, tool)},
			{"responses tools", apiResponses, build(size, `{"model":"auto","input":"hi","tools":[`, `]}`, tool)},
			{"completion prompts", apiCompletions, build(size, `{"model":"auto","prompt":[`, `]}`, func(int) string { return `"x"` })},
		} {
			b.Run(fmt.Sprintf("%s %d MiB", tc.name, size>>20), func(b *testing.B) {
				parse := func() error {
					req, err := parseRequest(tc.body, tc.a, c)
					if err != nil {
						return err
					}
					return h.checkCounts(req)
				}
				if err := parse(); err == nil {
					b.Fatal("the body was not refused")
				} else {
					b.Log(len(tc.body), "bytes:", err)
				}
				b.SetBytes(int64(len(tc.body)))
				b.ReportAllocs()
				for b.Loop() {
					parse()
				}
			})
		}
	}
}

// BenchmarkManyContentParts is what a request of one message of tiny
// content parts costs to parse, at 1 MiB and at max_request_bytes'
// default, 16 MiB: no cap counts parts, so such a body is read whole
// (partsText reads the parts in place).
func BenchmarkManyContentParts(b *testing.B) {
	h := &Handler{maxMetaKeys: 256, maxMessages: 4096}
	c := caps{h.maxMetaKeys, h.maxMessages, DefaultMaxTools}
	body := func(size int, head, part, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len()+len(tail)+len(part)+1 < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(part)
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	for _, size := range []int{1 << 20, DefaultMaxBodyBytes} {
		for _, tc := range []struct {
			name string
			a    *api
			body []byte
		}{
			{"chat text parts", apiChat, body(size, `{"model":"auto","messages":[{"role":"user","content":[`, `{"type":"text","text":"x"}`, `]}]}`)},
			{"responses input_text parts", apiResponses, body(size, `{"model":"auto","input":[{"role":"user","content":[`, `{"type":"input_text","text":"x"}`, `]}]}`)},
		} {
			b.Run(fmt.Sprintf("%s %d MiB", tc.name, size>>20), func(b *testing.B) {
				parse := func() error {
					req, err := parseRequest(tc.body, tc.a, c)
					if err != nil {
						return err
					}
					return h.checkCounts(req)
				}
				if err := parse(); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(tc.body)))
				b.ReportAllocs()
				for b.Loop() {
					parse()
				}
			})
		}
	}
}
