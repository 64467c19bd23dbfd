package egress

import (
	"errors"
	"fmt"
)

// Errors of [ServerName]. A caller that peeks at a connection's first
// bytes reads more on ErrNeedMore, up to a bound of its own, and treats
// any other error as a refusal of a connection whose rule checks SNI.
var (
	// ErrNeedMore: the bytes are a valid beginning of a ClientHello that
	// ends further on.
	ErrNeedMore = errors.New("TLS ClientHello incomplete")
	// ErrNotTLS: the bytes are not a TLS ClientHello, or one that is
	// malformed; the error wrapping it says where.
	ErrNotTLS = errors.New("not a TLS ClientHello")
	// ErrNoSNI: a well-formed ClientHello without a server name.
	ErrNoSNI = errors.New("TLS ClientHello without a server name")
)

// Wire constants of TLS (RFC 8446) and its server_name extension
// (RFC 6066 §3).
const (
	recordHeaderLen     = 5         // type, legacy_record_version, length
	recordHandshake     = 22        // ContentType handshake (RFC 8446 §5.1)
	maxRecordLen        = 1 << 14   // TLSPlaintext.length (RFC 8446 §5.1)
	handshakeHeaderLen  = 4         // msg_type, uint24 length
	handshakeClientHi   = 1         // HandshakeType client_hello (§4)
	extServerName       = 0         // ExtensionType server_name (§4.2)
	nameTypeHostName    = 0         // NameType host_name (RFC 6066 §3)
	maxClientHelloBytes = 1<<16 - 1 // what ServerName reassembles at most
)

// ServerName returns the host_name of the server_name extension of the TLS
// ClientHello at the start of b, the first bytes a client sends on a
// connection (RFC 8446 §4.1.2, RFC 6066 §3). It does not normalise the
// name.
//
// A ClientHello may be split over several handshake records (RFC 8446
// §5.1); ServerName joins them, so a client gains nothing by splitting,
// and needs the whole ClientHello, up to 64 KiB, before it answers. The
// records must follow one another with nothing between them; anything
// else is ErrNotTLS. ServerName reads every extension and refuses a
// ClientHello that names a server twice (two server_name extensions, or
// two host_name entries: RFC 8446 §4.2 and RFC 6066 §3 forbid both), so
// that the name checked is the only one a server could act on.
//
// With Encrypted Client Hello the name read is the outer ClientHello's
// public name, not the server the client means: that is a residual risk
// of SNI checks, stated in the package documentation.
func ServerName(b []byte) (string, error) {
	msg, err := handshakeMessage(b)
	if err != nil {
		return "", err
	}
	return helloServerName(msg)
}

// handshakeMessage reassembles the first handshake message from the
// records at the start of b and checks that it is a ClientHello. It
// returns the message's body.
func handshakeMessage(b []byte) ([]byte, error) {
	var msg []byte
	want := -1 // the body's length, once its header is in msg
	for {
		if len(b) < recordHeaderLen {
			if len(b) > 0 && b[0] != recordHandshake {
				return nil, fmt.Errorf("%w: record type %d", ErrNotTLS, b[0])
			}
			if len(b) > 1 && b[1] != 3 {
				return nil, fmt.Errorf("%w: record version %d.x", ErrNotTLS, b[1])
			}
			return nil, ErrNeedMore
		}
		if b[0] != recordHandshake {
			return nil, fmt.Errorf("%w: record type %d", ErrNotTLS, b[0])
		}
		if b[1] != 3 {
			return nil, fmt.Errorf("%w: record version %d.%d", ErrNotTLS, b[1], b[2])
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > maxRecordLen {
			// RFC 8446 §5.1: no zero-length handshake fragments, none
			// longer than 2^14.
			return nil, fmt.Errorf("%w: handshake record of %d bytes", ErrNotTLS, n)
		}
		frag := b[recordHeaderLen:]
		more := len(frag) < n
		if !more {
			frag = frag[:n]
		}
		if msg == nil && len(frag) > 0 && frag[0] != handshakeClientHi {
			return nil, fmt.Errorf("%w: handshake message type %d", ErrNotTLS, frag[0])
		}
		msg = append(msg, frag...)
		if want < 0 && len(msg) >= handshakeHeaderLen {
			want = int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
			if want > maxClientHelloBytes {
				return nil, fmt.Errorf("%w: ClientHello of %d bytes is longer than vm-run reads", ErrNotTLS, want)
			}
		}
		if want >= 0 && len(msg) >= handshakeHeaderLen+want {
			// Bytes after the ClientHello in its last record would be
			// another handshake message, which a client does not send
			// before the server answers; they are not looked at.
			return msg[handshakeHeaderLen : handshakeHeaderLen+want], nil
		}
		if more {
			return nil, ErrNeedMore
		}
		b = b[recordHeaderLen+n:]
	}
}

// reader reads big-endian fields and length-prefixed vectors (RFC 8446
// §3.4) from a ClientHello body that is known to be complete, so running
// out is a malformation, never a need for more.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrNotTLS, what)
	}
	r.b = nil
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) int {
	v := r.bytes(1, what)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16(what string) int {
	v := r.bytes(2, what)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

// vec8 and vec16 read a vector with a 1- or 2-byte length.
func (r *reader) vec8(what string) []byte  { return r.bytes(r.u8(what), what) }
func (r *reader) vec16(what string) []byte { return r.bytes(r.u16(what), what) }

// helloServerName reads the server name from a ClientHello's body:
//
//	struct {
//	    ProtocolVersion legacy_version;                  2 bytes
//	    Random random;                                   32 bytes
//	    opaque legacy_session_id<0..32>;
//	    CipherSuite cipher_suites<2..2^16-2>;
//	    opaque legacy_compression_methods<1..2^8-1>;
//	    Extension extensions<8..2^16-1>;
//	} ClientHello;
//
// A TLS 1.2 ClientHello may end before its extensions (RFC 5246 §7.4.1.2);
// it then has no server name.
func helloServerName(body []byte) (string, error) {
	r := &reader{b: body}
	r.bytes(2+32, "version and random")
	if sid := r.vec8("session id"); len(sid) > 32 {
		return "", fmt.Errorf("%w: session id of %d bytes", ErrNotTLS, len(sid))
	}
	if cs := r.vec16("cipher suites"); r.err == nil && (len(cs) < 2 || len(cs)%2 != 0) {
		return "", fmt.Errorf("%w: cipher suites of %d bytes", ErrNotTLS, len(cs))
	}
	if cm := r.vec8("compression methods"); r.err == nil && len(cm) < 1 {
		return "", fmt.Errorf("%w: no compression method", ErrNotTLS)
	}
	if r.err != nil {
		return "", r.err
	}
	if len(r.b) == 0 {
		return "", ErrNoSNI
	}
	exts := &reader{b: r.vec16("extensions")}
	if r.err != nil {
		return "", r.err
	}
	if len(r.b) != 0 {
		return "", fmt.Errorf("%w: %d bytes after the extensions", ErrNotTLS, len(r.b))
	}
	name, found := "", false
	for len(exts.b) > 0 {
		typ := exts.u16("extension type")
		data := exts.vec16("extension")
		if exts.err != nil {
			return "", exts.err
		}
		if typ != extServerName {
			continue
		}
		if found {
			return "", fmt.Errorf("%w: two server_name extensions", ErrNotTLS)
		}
		found = true
		var err error
		if name, err = hostName(data); err != nil {
			return "", err
		}
	}
	if name == "" {
		return "", ErrNoSNI
	}
	return name, nil
}

// hostName reads the host_name entry of a server_name extension's data:
//
//	struct {
//	    NameType name_type;          1 byte, host_name(0)
//	    select (name_type) {
//	        case host_name: HostName;   opaque HostName<1..2^16-1>
//	    } name;
//	} ServerName;
//	struct { ServerName server_name_list<1..2^16-1> } ServerNameList;
//
// Entries of another name type are skipped: RFC 6066 defines none, and a
// client that sends one names no host by it. It returns "" when there is
// no host_name entry.
func hostName(data []byte) (string, error) {
	r := &reader{b: data}
	list := &reader{b: r.vec16("server name list")}
	if r.err != nil {
		return "", r.err
	}
	if len(r.b) != 0 || len(list.b) == 0 {
		return "", fmt.Errorf("%w: malformed server_name extension", ErrNotTLS)
	}
	name := ""
	for len(list.b) > 0 {
		typ := list.u8("server name type")
		v := list.vec16("server name")
		if list.err != nil {
			return "", list.err
		}
		if typ != nameTypeHostName {
			continue
		}
		if name != "" || len(v) == 0 {
			return "", fmt.Errorf("%w: an empty or second host_name", ErrNotTLS)
		}
		name = string(v)
	}
	return name, nil
}
