/*
 * muslclient is the egress test's musl client: built statically with
 * musl-gcc, it resolves a name with musl's own resolver (which reads
 * /etc/resolv.conf and asks the servers there itself, no NSS), connects,
 * and prints the body of an HTTP/1.0 GET, so that the test shows a musl
 * program reaching a listed name, and refused an unlisted one, with no
 * environment variable.
 *
 *	muslclient HOST PORT PATH
 *
 * Exits 0 with the body on standard output; on a failure prints the
 * resolver's or the kernel's message and exits 2 (resolving) or 1 (the
 * rest).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: muslclient HOST PORT PATH\n");
		return 1;
	}
	const char *host = argv[1], *port = argv[2], *path = argv[3];

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		printf("muslclient: resolve %s: %s\n",
		       host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return 2;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		printf("muslclient: connect %s:%s: %s\n", host, port, strerror(err));
		return 1;
	}

	char buf[4096];
	int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	if (n < 0 || (size_t)n >= sizeof buf) {
		printf("muslclient: request too long\n");
		return 1;
	}
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w < 0) {
			printf("muslclient: send: %s\n", strerror(errno));
			return 1;
		}
		off += w;
	}

	/* HTTP/1.0: the server closes after the body. Hold the response whole
	 * (the test's is a line), then print what follows the headers. */
	static char resp[1 << 16];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, resp + len, sizeof resp - 1 - len);
		if (r < 0) {
			printf("muslclient: receive: %s\n", strerror(errno));
			return 1;
		}
		if (r == 0)
			break;
		len += r;
		if (len == sizeof resp - 1) {
			printf("muslclient: response longer than %zu bytes\n", len);
			return 1;
		}
	}
	close(fd);
	resp[len] = '\0';
	char *body = strstr(resp, "\r\n\r\n");
	if (body == NULL) {
		printf("muslclient: no end of headers in %zu bytes\n", len);
		return 1;
	}
	body += 4;
	fwrite(body, 1, len - (body - resp), stdout);
	return 0;
}
