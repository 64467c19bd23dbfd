package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// clientHello returns the first bytes crypto/tls sends as a client with
// cfg: a whole ClientHello, read until ServerName stops asking for more.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		tls.Client(c, cfg).HandshakeContext(ctx)
		c.Close()
	}()
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hello []byte
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		if err != nil {
			t.Fatalf("read the ClientHello: %v", err)
		}
		hello = append(hello, buf[:n]...)
		if _, err := ServerName(hello); !errors.Is(err, ErrNeedMore) {
			return hello
		}
	}
}

func TestServerNameRealHello(t *testing.T) {
	for _, cfg := range []*tls.Config{
		{ServerName: "api.github.com"},
		{ServerName: "api.github.com", MaxVersion: tls.VersionTLS12},
		{ServerName: "a.b.slack.com", NextProtos: []string{"h2", "http/1.1"}, SessionTicketsDisabled: true},
	} {
		hello := clientHello(t, cfg)
		got, err := ServerName(hello)
		if err != nil || got != cfg.ServerName {
			t.Errorf("ServerName(hello for %q) = %q, %v", cfg.ServerName, got, err)
		}
		// Every strict prefix is a valid beginning that needs more.
		for i := range len(hello) {
			if _, err := ServerName(hello[:i]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("ServerName(first %d of %d bytes) = %v, want ErrNeedMore", i, len(hello), err)
			}
		}
		// Whatever follows the ClientHello is not looked at.
		if got, err := ServerName(append(hello, 0x17, 3, 3, 0, 1, 0)); err != nil || got != cfg.ServerName {
			t.Errorf("ServerName(hello and a record after it) = %q, %v", got, err)
		}
		// Split over records of one to 300 bytes, it reads the same.
		for _, size := range []int{1, 2, 3, 4, 7, 100, 300} {
			split := resplit(hello, size)
			got, err := ServerName(split)
			if err != nil || got != cfg.ServerName {
				t.Errorf("ServerName(hello in records of %d bytes) = %q, %v", size, got, err)
			}
			if _, err := ServerName(split[:len(split)-1]); !errors.Is(err, ErrNeedMore) {
				t.Errorf("ServerName(hello in records of %d bytes, less its last) = %v, want ErrNeedMore", size, err)
			}
		}
	}
}

// resplit carries the handshake message of the one record in hello in
// records of at most size bytes each.
func resplit(hello []byte, size int) []byte {
	msg := hello[recordHeaderLen:]
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestServerNameNoSNI(t *testing.T) {
	// crypto/tls sends no server_name for an address (RFC 6066 §3: "Literal
	// IPv4 and IPv6 addresses are not permitted in HostName").
	for _, cfg := range []*tls.Config{
		{ServerName: "10.0.0.5", InsecureSkipVerify: true},
		{InsecureSkipVerify: true},
	} {
		if got, err := ServerName(clientHello(t, cfg)); !errors.Is(err, ErrNoSNI) {
			t.Errorf("ServerName(hello for %q) = %q, %v, want ErrNoSNI", cfg.ServerName, got, err)
		}
	}
}

// hello builds a ClientHello record around extensions.
func hello(exts ...[]byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	if exts != nil {
		all := bytes.Join(exts, nil)
		body = append(body, byte(len(all)>>8), byte(len(all)))
		body = append(body, all...)
	}
	hs := append([]byte{handshakeClientHi, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordHandshake, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// ext builds an extension; sni a server_name extension of entries.
func ext(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func sni(entries ...[]byte) []byte {
	list := bytes.Join(entries, nil)
	return ext(extServerName, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...))
}

func hostEntry(typ byte, name string) []byte {
	return append([]byte{typ, byte(len(name) >> 8), byte(len(name))}, name...)
}

func TestServerNameCrafted(t *testing.T) {
	alpn := ext(16, []byte{0, 3, 2, 'h', '2'})
	tests := []struct {
		what string
		b    []byte
		name string
		err  error
	}{
		{"the probe itself", hello(alpn, sni(hostEntry(0, "api.github.com"))), "api.github.com", nil},
		{"no extensions", hello(), "", ErrNoSNI},
		{"no server_name", hello(alpn), "", ErrNoSNI},
		{"two server_name extensions", hello(sni(hostEntry(0, "api.github.com")), sni(hostEntry(0, "evil.example"))), "", ErrNotTLS},
		{"two host_name entries", hello(sni(hostEntry(0, "api.github.com"), hostEntry(0, "evil.example"))), "", ErrNotTLS},
		{"an unknown name type only", hello(sni(hostEntry(7, "api.github.com"))), "", ErrNoSNI},
		{"an unknown name type first", hello(sni(hostEntry(7, "x"), hostEntry(0, "api.github.com"))), "api.github.com", nil},
		{"an empty host_name", hello(sni(hostEntry(0, ""))), "", ErrNotTLS},
		{"an empty server name list", hello(sni()), "", ErrNotTLS},
		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: api.github.com\r\n\r\n"), "", ErrNotTLS},
		{"SSLv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, "", ErrNotTLS},
		{"an alert", []byte{21, 3, 3, 0, 2, 2, 40}, "", ErrNotTLS},
		{"a ServerHello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, "", ErrNotTLS},
		{"a zero-length record", []byte{22, 3, 1, 0, 0}, "", ErrNotTLS},
		{"a record over 2^14", []byte{22, 3, 1, 0x40, 1}, "", ErrNotTLS},
		{"a record version 2", []byte{22, 2}, "", ErrNotTLS},
		{"a header alone", []byte{22, 3, 1}, "", ErrNeedMore},
	}
	// A hello whose extensions' length runs past its end.
	bad := hello(sni(hostEntry(0, "api.github.com")))
	bad[recordHeaderLen+handshakeHeaderLen+2+32+1+4+2+1]++
	tests = append(tests, struct {
		what string
		b    []byte
		name string
		err  error
	}{"extensions longer than the hello", bad, "", ErrNotTLS})
	// An alert between two fragments of a hello.
	split := resplit(hello(sni(hostEntry(0, "api.github.com"))), 10)
	mixed := append(append(append([]byte{}, split[:15]...), 21, 3, 3, 0, 2, 1, 0), split[15:]...)
	tests = append(tests, struct {
		what string
		b    []byte
		name string
		err  error
	}{"an alert between fragments", mixed, "", ErrNotTLS})

	for _, tt := range tests {
		got, err := ServerName(tt.b)
		if got != tt.name || !errors.Is(err, tt.err) {
			t.Errorf("%s: ServerName = %q, %v, want %q, %v", tt.what, got, err, tt.name, tt.err)
		}
	}
}

// FuzzServerName: ServerName never panics, and once it reads a name from
// b, every prefix of b either needs more or reads the same name.
func FuzzServerName(f *testing.F) {
	f.Add(clientHello(f, &tls.Config{ServerName: "api.github.com"}))
	f.Add(resplit(clientHello(f, &tls.Config{ServerName: "a.slack.com", MaxVersion: tls.VersionTLS12}), 50))
	f.Add(hello(sni(hostEntry(0, "x"), hostEntry(0, "y"))))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ServerName(b)
		if err != nil {
			if name != "" {
				t.Fatalf("ServerName = %q with error %v", name, err)
			}
			if !errors.Is(err, ErrNeedMore) && !errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrNoSNI) {
				t.Fatalf("ServerName error %v is none of the three", err)
			}
			return
		}
		if name == "" {
			t.Fatal("ServerName = \"\" without an error")
		}
		for i := range len(b) {
			if got, err := ServerName(b[:i]); !errors.Is(err, ErrNeedMore) && (err != nil || got != name) {
				t.Fatalf("ServerName(b) = %q but ServerName(b[:%d]) = %q, %v", name, i, got, err)
			}
		}
	})
}
