/* Nova's Lambda Runtime API client for Zig functions, in C with POSIX sockets alone: Zig
   compiles it with nova_main.zig, whose nova_invoke calls the function's handler. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int nova_invoke(const char *event, size_t length, const char **out, size_t *out_length);

struct response {
    char *data; /* the whole response; body points into it */
    char *body;
    size_t body_length;
};

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static int connect_to(const char *address) {
    char host[256];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
        fprintf(stderr, "nova: bad AWS_LAMBDA_RUNTIME_API %s\n", address);
        exit(1);
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    struct addrinfo hints = {0}, *found;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &found) != 0) fail("nova: getaddrinfo");
    int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (fd < 0 || connect(fd, found->ai_addr, found->ai_addrlen) != 0) fail("nova: connect");
    freeaddrinfo(found);
    return fd;
}

static void send_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t sent = write(fd, data, length);
        if (sent <= 0) fail("nova: write");
        data += sent;
        length -= (size_t)sent;
    }
}

static struct response request(const char *address, const char *method, const char *path,
                               const char *body, size_t body_length) {
    int fd = connect_to(address);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     method, path, address, body_length);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, body_length);
    size_t size = 65536, used = 0;
    char *data = malloc(size + 1);
    for (;;) {
        if (used == size) {
            size *= 2;
            data = realloc(data, size + 1);
        }
        if (data == NULL) fail("nova: malloc");
        ssize_t got = read(fd, data + used, size - used);
        if (got < 0) fail("nova: read");
        if (got == 0) break;
        used += (size_t)got;
    }
    close(fd);
    data[used] = '\0';
    struct response response = {data, data + used, 0};
    char *end = strstr(data, "\r\n\r\n");
    if (end != NULL) {
        response.body = end + 4;
        response.body_length = used - (size_t)(response.body - data);
    }
    return response;
}

/* The value of header `name` (lower case) in the response's head, copied into `value`. */
static void header(const struct response *response, const char *name, char *value, size_t size) {
    size_t length = strlen(name);
    value[0] = '\0';
    for (const char *line = strstr(response->data, "\r\n"); line != NULL && line + 2 < response->body;
         line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (strncasecmp(start, name, length) == 0 && start[length] == ':') {
            start += length + 1;
            while (*start == ' ') start++;
            size_t i = 0;
            while (i + 1 < size && start[i] != '\r' && start[i] != '\0') {
                value[i] = start[i];
                i++;
            }
            value[i] = '\0';
            return;
        }
    }
}

int nova_main(void) {
    const char *address = getenv("AWS_LAMBDA_RUNTIME_API");
    if (address == NULL) {
        fprintf(stderr, "nova: AWS_LAMBDA_RUNTIME_API is not set\n");
        return 1;
    }
    for (;;) {
        struct response next = request(address, "GET", "/2018-06-01/runtime/invocation/next", "", 0);
        char id[256], path[512];
        header(&next, "lambda-runtime-aws-request-id", id, sizeof id);
        const char *out;
        size_t out_length;
        if (nova_invoke(next.body, next.body_length, &out, &out_length) == 0) {
            snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/response", id);
            free(request(address, "POST", path, out, out_length).data);
        } else {
            /* The handler's error name: a Zig identifier, so no JSON escaping is needed. */
            char error[1024];
            int n = snprintf(error, sizeof error,
                             "{\"errorType\":\"Zig.Error\",\"errorMessage\":\"%.*s\"}",
                             (int)(out_length > 900 ? 900 : out_length), out);
            snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/error", id);
            free(request(address, "POST", path, error, (size_t)n).data);
        }
        free(next.data);
    }
}
