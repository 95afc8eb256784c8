// Command ocireg serves go-containerregistry's in-memory registry with the
// OCI 1.1 referrers API switched on (its cmd/registry leaves it off), on a
// loopback address. Test and demo fixture only: it keeps everything in memory.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	portFile := flag.String("port-file", "", "write the chosen port here once listening")
	referrers := flag.Bool("referrers", true, "serve the OCI 1.1 referrers API")
	quiet := flag.Bool("quiet", true, "do not log every request")
	flag.Parse()

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("bad -addr %q: %v", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("refusing to listen on non-loopback address %q", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	opts := []registry.Option{registry.WithReferrersSupport(*referrers)}
	if *quiet {
		opts = append(opts, registry.Logger(log.New(discard{}, "", 0)))
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(fmt.Sprintf("%d\n", port)), 0o644); err != nil {
			log.Fatalf("write port file: %v", err)
		}
	}
	fmt.Printf("ocireg listening on %s (referrers=%v)\n", ln.Addr(), *referrers)
	srv := &http.Server{Handler: registry.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
