// Command floorproxy is the proxy benchmark's floor: Go's
// httputil.ReverseProxy in front of one upstream, doing nothing else
// (no routing, no JSON, no recording). What a proxy in Go cannot do
// without, measured on the same machine and load as the others.
//
//	floorproxy -upstream http://127.0.0.1:9001 [-addr 127.0.0.1:0]
//
// It prints "floorproxy: listening on ADDR" once it listens. Loopback
// only, like the load generator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floorproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	up := flag.String("upstream", "", "the upstream's root URL, e.g. http://127.0.0.1:9001")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	u, err := url.Parse(*up)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("-upstream %q is not an http(s) URL", *up)
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback host:port", *addr)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// The same pool as triage serve's: a connection per concurrent
	// request, kept.
	rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "floorproxy: listening on %s\n", ln.Addr())
	// A benchmark script stops it with SIGINT, which a background job
	// otherwise ignores.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: rp}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
