// Package secrets is the response scrubber: it keeps the values of a
// profile's secrets out of what the MCP client, and so the model, reads. A
// profile hands secrets to the server only as environment variables; a
// server that echoes one back (by mistake, or because it is hostile) has
// every occurrence replaced before the message leaves the proxy, and each
// replacement is reported for the ledger as secret_redacted.
//
// The package owns the search and the rewriting of one message. It does
// not read profiles, frame lines or write the ledger; the proxy calls
// [Scrubber.Scrub] on every server→client line and records the [Hit]s.
//
//	s, err := secrets.NewScrubber([]secrets.Secret{
//		{Name: "GITHUB_TOKEN", Value: []byte(os.Getenv("GITHUB_TOKEN"))},
//	})
//	if err != nil {
//		return fmt.Errorf("secrets of profile %q: %w", name, err)
//	}
//	out, hits := s.Scrub(line) // out is line itself when hits is nil
//	for _, h := range hits {
//		// record secret_redacted: h.Name, h.Form, h.Count
//	}
//
// # What the client reads
//
// The server is assumed hostile: it will try to slip a secret past the
// scrubber. So the scrubber judges what the client will read, not the
// bytes on the wire. Every JSON string of the message, object keys as well
// as values, is searched after JSON decoding: a token written with some or
// all of its characters as \uXXXX escapes (surrogate pairs included), or
// with "\/" for "/", is seen as the client sees it. A string that holds a
// secret is written again, JSON-escaped, with each occurrence replaced by
// the text "[redacted: secret NAME]" inside the same string; every other
// byte of the message is left as it was. A lone surrogate escape
// ("\ud800") is valid JSON and is written back as the same escape.
// Redacting a key can make two keys of one object equal.
//
// Occurrences that overlap (a secret that repeats itself, or two secrets
// that share characters) merge into one redaction named after the first.
// The text after redaction is searched again: a redaction next to what the
// server wrote could make up a secret in some form, and if that is still
// so after three rounds the whole string becomes one redaction.
//
// # Forms
//
// In a decoded string the scrubber looks for each secret in these forms,
// reported as [Hit].Form:
//
//   - "raw" ([FormRaw]): the value's bytes, as they are. This includes the
//     value inside text that is itself JSON (a tool result whose text is a
//     JSON document), after that text's escapes are decoded too, and the
//     value broken by line breaks (CR, LF) that a reader would skip.
//   - "url" ([FormURL]): the value after percent-decoding: any of its bytes
//     written as %XX, either hex case, up to all of them, twice encoded
//     ("%2567") included. A value with spaces is also found with each space
//     written '+' (HTML form encoding), in the string as written or after
//     percent-decoding.
//   - "base64" ([FormBase64]): the standard alphabet (RFC 4648 section 4),
//     padded or not; the value may start at any of the three byte
//     positions of a larger encoded blob, with anything before and after
//     it. What is searched is the core of the encoding at each position:
//     the characters that depend on the value's bytes alone (padding and
//     the characters shared with neighbouring bytes are not part of it).
//     Base64 wrapped into lines (MIME at 76 columns, PEM at 64, or any
//     other width) is found too, as is base64 inside a URL with '+', '/'
//     and '=' percent-encoded. A core is at least 10 characters.
//   - "base64url" ([FormBase64URL]): the same in the URL and filename safe
//     alphabet ('-' and '_' for '+' and '/'). When the value's core
//     contains neither '+' nor '/', the two alphabets agree and the hit is
//     reported as "base64".
//
// Forms combine. A string is searched as decoded, and then through chains
// of up to two more transforms: decode JSON escapes again, decode %XX, and
// remove line breaks (the last in a chain). So base64 in a percent-encoded
// URL query inside a JSON document inside a tool result is found; a hit is
// reported as "base64" or "base64url" when the pattern was a base64 core,
// else as "url" when percent-decoding was on its way, else as "raw".
// Count is the number of separate occurrences: one found through two
// chains, or inside another, counts once.
//
// # Short values
//
// [NewScrubber] refuses a value shorter than [MinSecretLen] (8 bytes), an
// empty name, and a name whose redaction text would itself hold a secret.
// A short value would be found in ordinary text (words, numbers, runs of
// an image's base64) and mangle messages the model needs, and one that
// short is no secret worth a sandbox. At 8 bytes each base64 core is at
// least 10 characters, 60 bits, so a chance match even inside megabytes of
// random base64 is about one in 10^12.
//
// # Lines that are not JSON
//
// A line of several JSON values separated by whitespace is scrubbed value
// by value, as a stream decoder would read it. A line that is not JSON at
// all (the proxy may pass such a line through, and some clients log it)
// is scrubbed as raw bytes: the whole line is searched like one string
// that has not yet been JSON-decoded, through chains of up to three
// transforms, and occurrences are replaced in the bytes by the redaction
// text. The forms are the same; the output is whatever the input was, not
// JSON.
//
// # What is not caught
//
// The scrubber finds what a reader gets from the message by standard
// decoding. It does not find:
//
//   - a secret split across two JSON strings, two messages, or a string and
//     a key: each string is searched on its own, and each message;
//   - other encodings: hex, base32, base85, quoted-printable, HTML
//     entities, punycode, rot13, gzip or any compression, encryption;
//   - base64 of base64, three or more levels of percent-encoding or of
//     JSON escaping, and chains of more than two of the transforms above;
//   - a secret the server transforms: case changed, reversed, characters
//     inserted (spaces, zero-width characters, separators other than line
//     breaks), Unicode look-alikes or normalisation forms, a substring of
//     the secret, a hash or a signature made with it;
//   - a value shorter than 8 bytes, which NewScrubber refuses;
//   - anything the server does other than answer: a side channel, the time
//     it takes, a file it writes, a network request (egress rules cover
//     those), or a secret the model is asked to reconstruct piece by
//     piece.
//
// A server that wants to leak a secret it holds can always encode it in a
// way no scrubber anticipates. The scrubber stops the common accident and
// the easy attack; it is not a boundary in the way the sandbox is.
//
// # Cost
//
// Every server→client message goes through Scrub, so the message without
// a secret is the case made cheap. Scrub then returns msg itself, without
// allocating. The patterns (each secret's value, its '+' variant, six base64
// cores) are found together by one Wu-Manber search, which reads only the
// last three bytes of a window as long as the shortest pattern and then
// jumps by nearly its length: on text, most bytes are never read. A
// transform is applied only where it could make a pattern byte appear
// (a \" or \n in a document does not send it through a second JSON
// decoding, a %20 through percent-decoding). A line is first searched as a
// whole, with its views; only when something turns up is it walked as JSON
// and searched string by string. Measured with three secrets on one core
// of a 2-CPU virtual machine (go test -bench . ./proxy/secrets/; the
// machine is shared, figures vary by some 15%):
//
//	no secret, 1 KB tools/call result           ~1.2 µs   ~900 MB/s
//	no secret, 64 KB result of source text       ~90 µs   ~750 MB/s
//	no secret, 64 KB result of base64 (image)    ~26 µs   ~2.5 GB/s
//	one secret redacted, 1 KB                    ~10 µs
//	one secret redacted, 64 KB                  ~0.35 to 0.65 ms
//
// For comparison, bytes.Index once per pattern over the same views takes
// ~4.5 µs (1 KB) and ~280 µs (64 KB). The source text is the hard case:
// it has an escape every dozen bytes, and each is looked at.
//
// # The caller's part
//
// Scrub every line the server sends toward the client before anything
// else reads it, and let the rest of the proxy (policy, outcome, the line
// forwarded) see only what Scrub returns; a line the proxy writes that
// quotes the server (an error message, a log line the client may see) is
// then clean too. The client→server direction needs no scrubbing: the
// client never had the secrets. The server's stderr does not reach the
// client; if it is shown to the model some other way, scrub it as a line
// that is not JSON.
//
// Record each [Hit] as secret_redacted (name, form, count, never the
// value) before the line is forwarded, as every other decision is; a
// ledger that cannot record stops the line. A redacted key can make a key
// appear twice in one object, which the proxy's parser refuses: the line
// is then dropped, which fails closed.
//
// The redaction text names the secret, so the model learns that a secret
// of that name was withheld and can say so to the user; it never learns
// the value, or how long it is.
//
// A [Scrubber] is immutable once built and safe for concurrent use; its
// scratch buffers come from a sync.Pool.
package secrets
