// Command netclient is the Go program of vm-run's egress tests: it reaches
// a URL with net/http, and resolves a name over TCP, with Go's own
// resolver reading /etc/resolv.conf as any Go program does.
//
//	netclient get URL        print the body
//	netclient tcpdns NAME    resolve NAME over DNS-over-TCP, print the addresses
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: netclient get URL | tcpdns NAME")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "netclient:", err)
		os.Exit(1)
	}
}

func run(mode, arg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch mode {
	case "get":
		req, err := http.NewRequestWithContext(ctx, "GET", arg, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		fmt.Print(string(b))
		return nil
	case "tcpdns":
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}}
		addrs, err := r.LookupHost(ctx, arg)
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}
