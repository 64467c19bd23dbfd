package egress

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HostDialer is the [Dialer] on the host's network: it resolves a name at
// dial time, checks every address against the rule with [Permitted], and
// connects, directly or through an HTTP CONNECT proxy.
type HostDialer struct {
	// Resolver is the "ip:port" of the DNS server names are resolved
	// with, over UDP (TCP when an answer is truncated); "" is the
	// system's resolver.
	Resolver string
	// Proxy is an HTTP CONNECT proxy ("http://user:pass@proxy:3128")
	// every dial but a HostLoopback one goes through; nil for none.
	Proxy *url.URL
	// Timeout bounds a whole Dial: the name lookup, every address tried,
	// the proxy's answer. Zero is no bound but the caller's context.
	Timeout time.Duration
}

// minAttempt is the least time one address is given when a name has
// several and the Timeout is shared between them, as Go's own dialer does,
// so that a black-holed first address does not starve the others.
const minAttempt = 2 * time.Second

// maxProxyHeader bounds the proxy's answer to CONNECT, status line and
// header fields, so that a broken proxy cannot make vm-run hold an endless
// header.
const maxProxyHeader = 64 << 10

// Dial implements [Dialer].
//
// Without a proxy, a name is looked up for IPv4 addresses on the host, and
// refused (a *[Refusal]) when any address it resolves to is not
// [Permitted] by rule: "db.example.com resolves to 10.0.0.7, a private
// address (...)". Refusing the whole name rather than skipping the
// address means that a name which rebinds part of its answer to an
// internal address fails every time, visibly, instead of now and then.
// The permitted addresses are then tried in the resolver's order until
// one connects; dialed is the address connected to.
//
// With a proxy, a name is sent to the proxy as it is (CONNECT
// api.github.com:443) and the proxy resolves it, and dialed is the
// proxy's own address; but where this host resolves the name too, its
// addresses are checked first as for a direct dial, so that a proxy on
// this host reaches nothing a direct dial would not. An address literal rule's address is checked
// and sent to the proxy the same way, unless it is a loopback address:
// that, and a HostLoopback rule, mean this host's loopback, which the
// proxy's is not, so they are always dialled directly. via is the proxy's URL without its credentials; a
// proxy that answers CONNECT with anything but 2xx is an error naming the
// status, never the credentials.
func (h *HostDialer) Dial(ctx context.Context, name string, addr netip.Addr, port uint16, rule *Rule) (net.Conn, string, string, error) {
	if rule == nil {
		return nil, "", "", &Refusal{Reason: "no rule allows it"}
	}
	if !slices.Contains(rule.Ports, port) {
		return nil, "", "", &Refusal{Reason: fmt.Sprintf("rule %s does not list port %d", rule, port)}
	}
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	dest := name
	if name == HostLoopback && rule.Host == HostLoopback {
		name, addr = "", hostLoopbackAddr
	}
	if name == "" {
		if rule.Host != HostLoopback && !isAddrLiteral(rule.Host) {
			return nil, "", "", &Refusal{Reason: fmt.Sprintf("rule %s names no address, %s", rule, addr)}
		}
		addr = addr.Unmap()
		if reason, ok := Permitted(addr, rule); !ok {
			return nil, "", "", &Refusal{Reason: "refused " + reason}
		}
		dest = addr.String()
	} else if rule.Host == HostLoopback || isAddrLiteral(rule.Host) {
		return nil, "", "", &Refusal{Reason: fmt.Sprintf("rule %s names no host name, %s", rule, name)}
	}
	if h.Proxy != nil && rule.Host != HostLoopback && Classify(addr) != Loopback {
		// Where this host can resolve the name, its addresses are
		// checked as for a direct dial before the proxy is asked: a
		// proxy on this host would otherwise reach its loopback and
		// private networks for any name that resolves there. A name
		// only the proxy can resolve goes to it as it is.
		if name != "" {
			if addrs, err := h.resolve(ctx, name); err == nil {
				if err := h.permitted(name, addrs, rule); err != nil {
					return nil, "", "", err
				}
			}
		}
		return h.viaProxy(ctx, net.JoinHostPort(dest, strconv.Itoa(int(port))))
	}
	addrs := []netip.Addr{addr}
	if name != "" {
		var err error
		if addrs, err = h.resolve(ctx, name); err != nil {
			return nil, "", "", err
		}
		if err := h.permitted(name, addrs, rule); err != nil {
			return nil, "", "", err
		}
		dest = name
	}
	c, err := dialEach(ctx, addrs, port)
	if err != nil {
		return nil, "", "", fmt.Errorf("connect to %s port %d: %w", dest, port, err)
	}
	return c, c.RemoteAddr().String(), "", nil
}

// permitted refuses name unless every address it resolved to is one the
// rule allows, and none is an address of this host's own interfaces (a
// public address of this host is this host, whatever its class), which
// only an address literal or host-loopback rule reaches.
func (h *HostDialer) permitted(name string, addrs []netip.Addr, rule *Rule) error {
	own, err := ownAddresses()
	for _, a := range addrs {
		if reason, ok := Permitted(a, rule); !ok {
			return &Refusal{Reason: name + " resolves to " + reason}
		}
		// Loopback addresses are Permitted's to judge.
		if !a.IsLoopback() && (err != nil || slices.Contains(own, a)) {
			return &Refusal{Reason: fmt.Sprintf("%s resolves to %s, an address of this host", name, a)}
		}
	}
	return nil
}

// ownAddresses returns the addresses of this host's interfaces, read once
// per dial. On an error the caller refuses rather than guesses.
func ownAddresses() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var own []netip.Addr
	for _, ifa := range ifas {
		if p, err := netip.ParsePrefix(ifa.String()); err == nil {
			own = append(own, p.Addr().Unmap())
		}
	}
	return own, nil
}

// resolve looks name up for IPv4 addresses, unmapped, without duplicates.
func (h *HostDialer) resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	r := net.DefaultResolver
	if h.Resolver != "" {
		server := h.Resolver
		r = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			},
		}
	}
	// The trailing dot makes the name absolute: a rule's name is the
	// host reached, never the name with a search domain appended
	// (resolv.conf(5), "search").
	found, err := r.LookupNetIP(ctx, "ip4", name+".")
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", name, err)
	}
	var addrs []netip.Addr
	for _, a := range found {
		if a = a.Unmap(); !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %q: no IPv4 address", name)
	}
	return addrs, nil
}

// dialEach connects to the first of addrs that accepts, giving each the
// time left shared among those left, but at least minAttempt. It returns
// the errors of all when none accepts.
func dialEach(ctx context.Context, addrs []netip.Addr, port uint16) (net.Conn, error) {
	var errs []error
	for i, a := range addrs {
		actx := ctx
		if dl, ok := ctx.Deadline(); ok && i < len(addrs)-1 {
			share := time.Until(dl) / time.Duration(len(addrs)-i)
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(ctx, max(share, minAttempt))
			defer cancel()
		}
		var d net.Dialer
		c, err := d.DialContext(actx, "tcp4", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// viaProxy opens a tunnel to hostport through h.Proxy (RFC 9110 §9.3.6).
func (h *HostDialer) viaProxy(ctx context.Context, hostport string) (net.Conn, string, string, error) {
	via := Redacted(h.Proxy)
	proxyAddr, err := proxyHostPort(h.Proxy)
	if err != nil {
		return nil, "", via, err
	}
	var d net.Dialer
	if h.Resolver != "" {
		server := h.Resolver
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, "", via, fmt.Errorf("connect to proxy %s: %w", via, err)
	}
	tunnel, err := connect(ctx, c, hostport, h.Proxy.User)
	if err != nil {
		c.Close()
		return nil, "", via, fmt.Errorf("proxy %s: CONNECT %s: %w", via, hostport, err)
	}
	return tunnel, c.RemoteAddr().String(), via, nil
}

// connect sends CONNECT hostport on c and reads the proxy's answer. The
// exchange is bounded by ctx: its deadline, and its cancellation, which
// closes the exchange at once.
func connect(ctx context.Context, c net.Conn, hostport string, user *url.Userinfo) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var req strings.Builder
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", hostport, hostport)
	if user != nil {
		pass, _ := user.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(user.Username() + ":" + pass))
		fmt.Fprintf(&req, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	req.WriteString("\r\n")
	// An error once ctx is done, or its deadline passed (its timer may
	// not have fired yet), comes of the deadlines set here: ctx's error
	// says why.
	ctxErr := func(err error) error {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return cmp.Or(ctx.Err(), context.DeadlineExceeded)
		}
		return cmp.Or(ctx.Err(), err)
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		return nil, fmt.Errorf("send: %w", ctxErr(err))
	}
	br := bufio.NewReader(io.LimitReader(c, maxProxyHeader))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", ctxErr(err))
	}
	resp.Body.Close()
	// RFC 9110 §9.3.6: any 2xx answer means the tunnel is open. The
	// reason phrase is the proxy's text; the ledger gets the standard one.
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("proxy answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if !stop() || ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	c.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		// The upstream spoke first and its bytes came with the answer.
		early, _ := br.Peek(n)
		return &prefixConn{Conn: c, early: slices.Clone(early)}, nil
	}
	return c, nil
}

// prefixConn is a tunnel whose first bytes were read with the proxy's
// answer. It keeps CloseWrite, which a relay needs for half-close.
type prefixConn struct {
	net.Conn
	early []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.early) > 0 {
		n := copy(b, p.early)
		p.early = p.early[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// CloseWrite shuts the tunnel's sending side, as *net.TCPConn does.
func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// proxyHostPort returns the address to dial for proxy u, with the default
// port of its scheme.
func proxyHostPort(u *url.URL) (string, error) {
	if u.Scheme != "http" {
		return "", fmt.Errorf("proxy %s: only http:// proxies are supported", Redacted(u))
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("proxy %s: no host", Redacted(u))
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// Redacted returns u as text without its user information, for the
// ledger and messages: "http://proxy.corp:3128".
func Redacted(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.User = nil
	return v.String()
}

// ProxyFromEnv returns the HTTP CONNECT proxy named by HTTPS_PROXY, or
// https_proxy when that is unset or empty, in env ("KEY=value" entries,
// as os.Environ returns), or nil when neither names one. A value without
// a scheme is taken as http:// (as curl does); any scheme but http is an
// error, as is a value that names no host. NO_PROXY is not read: vm-run
// dials only the names of a profile's allow list, and a profile that
// needs some of them reached directly sets upstream_proxy instead.
func ProxyFromEnv(env []string) (*url.URL, error) {
	var v string
	for _, key := range []string{"HTTPS_PROXY", "https_proxy"} {
		// The first entry of a key wins, as with os.Getenv.
		for _, kv := range env {
			if val, ok := strings.CutPrefix(kv, key+"="); ok {
				v = val
				break
			}
		}
		if v != "" {
			break
		}
	}
	if v == "" {
		return nil, nil
	}
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil {
		// url.Error quotes the input, credentials and all.
		return nil, errors.New("HTTPS_PROXY is not a URL")
	}
	if _, err := proxyHostPort(u); err != nil {
		return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	return u, nil
}
