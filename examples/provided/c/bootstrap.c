/* A compiled custom runtime: one keep-alive HTTP/1.1 connection to the Runtime API,
 * GET /next -> {"echo":<event>} -> POST /response, forever. Build: cc -O2 -o bootstrap bootstrap.c
 * Libc only; exits when the Runtime API goes away (as a bootstrap should). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[7 << 20];

static int dial(const char *api) {
    char host[64] = {0};
    const char *colon = strrchr(api, ':');
    if (!colon || colon - api >= (long)sizeof host) return -1;
    memcpy(host, api, colon - api);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? fd : -1;
}

static int send_all(int fd, const char *data, size_t size) {
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) return -1;
        data += n, size -= n;
    }
    return 0;
}

/* Reads one response; returns the body length (body at *body) and copies the request id. */
static long read_response(int fd, char **body, char *request_id, size_t id_size) {
    size_t have = 0;
    char *end = NULL;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) return -1;
        have += n;
        buf[have] = 0;
    }
    long length = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "Content-Length:", 15)) length = atol(line + 15);
        if (!strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) && request_id) {
            const char *value = line + 30 + strspn(line + 30, " ");
            size_t n = strcspn(value, "\r");
            if (n >= id_size) n = id_size - 1;
            memcpy(request_id, value, n), request_id[n] = 0;
        }
    }
    *body = end + 4;
    size_t header = *body - buf;
    if (header + length > sizeof buf - 1) return -1;
    while (have < header + length) {
        ssize_t n = read(fd, buf + have, header + length - have);
        if (n <= 0) return -1;
        have += n;
    }
    return length;
}

int main(void) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    int fd = api ? dial(api) : -1;
    if (fd < 0) { fprintf(stderr, "cannot reach the Runtime API at %s\n", api ? api : "(unset)"); return 1; }
    static char out[(7 << 20) + 256];
    char id[256], *event;
    for (;;) {
        const char next[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
        if (send_all(fd, next, sizeof next - 1)) return 1;
        long size = read_response(fd, &event, id, sizeof id);
        if (size < 0) return 1;
        int body = snprintf(out + 4096, sizeof out - 4096, "{\"echo\":%.*s}", (int)size, event);
        int head = snprintf(out, 4096,
            "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", id, body);
        memmove(out + head, out + 4096, body);
        if (send_all(fd, out, head + body)) return 1;
        if (read_response(fd, &event, NULL, 0) < 0) return 1;
    }
}
