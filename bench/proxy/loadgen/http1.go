package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one client's keep-alive HTTP/1.1 connection. net/http's client
// took about 100 us of CPU per request here (a goroutine per connection
// for reading and one for writing, header maps, a timer per request) on
// the same 2 cores as the server it measures; this one writes each
// request, prebuilt, in one write and parses only what the benchmark
// reads, so the load generator takes less of the machine it loads.
type conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
}

// response is what the benchmark reads of an answer.
type response struct {
	status          int
	model, decision string
}

// errMalformed is a response this client cannot parse.
var errMalformed = errors.New("malformed HTTP/1.1 response")

// request builds a POST of body to path on host: the bytes of the whole
// request, written at once.
// Each of extra is a "Name: value" header line.
func request(host, path string, body []byte, extra ...string) []byte {
	b := make([]byte, 0, len(body)+160)
	b = fmt.Appendf(b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: triage-loadgen\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n", path, host, len(body))
	for _, h := range extra {
		b = append(append(b, h...), "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// do sends req (from request) and reads the whole answer. Any error
// closes the connection; the next call dials again.
func (c *conn) do(req []byte) (response, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return response{}, err
		}
		c.c = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 16<<10)
		} else {
			c.br.Reset(nc)
		}
	}
	resp, keep, err := c.roundTrip(req)
	if err != nil || !keep {
		c.close()
	}
	return resp, err
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

func (c *conn) roundTrip(req []byte) (response, bool, error) {
	// One deadline for the whole exchange, like http.Client.Timeout.
	if err := c.c.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return response{}, false, err
	}
	if _, err := c.c.Write(req); err != nil {
		return response{}, false, err
	}
	return readResponse(c.br)
}

// readResponse reads one response to a POST: status line, headers and
// the whole body (Content-Length, chunked, or up to EOF). keep is false
// when the connection cannot carry another request.
func readResponse(br *bufio.Reader) (resp response, keep bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return resp, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return resp, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	keep = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		line, err := readLine(br)
		if err != nil {
			return resp, false, err
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return resp, false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil || length < 0 {
				return resp, false, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			}
		case bytes.EqualFold(k, []byte("X-Triage-Model")):
			resp.model = string(v)
		case bytes.EqualFold(k, []byte("X-Triage-Decision")):
			resp.decision = string(v)
		}
	}
	switch {
	case resp.status == 204 || resp.status == 304 || resp.status < 200:
		return resp, keep, nil
	case chunked:
		return resp, keep, discardChunked(br)
	case length >= 0:
		_, err := br.Discard(int(length))
		return resp, keep, err
	}
	// No length: the body runs to the end of the connection.
	_, err = io.Copy(io.Discard, br)
	return resp, false, err
}

// readLine reads a CRLF-terminated line without its end. The slice is
// valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line over %d bytes", errMalformed, br.Size())
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// discardChunked reads a chunked body and its trailers.
func discardChunked(br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			for {
				line, err := readLine(br)
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return err
		}
		if line, err := readLine(br); err != nil || len(line) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errMalformed)
		}
	}
}
