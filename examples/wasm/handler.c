/* A WebAssembly function for Nova (runtime wasm, handler handler._start), built as a WASI command:
       zig cc -target wasm32-wasi -Os -o handler.wasm handler.c
   (or clang --target=wasm32-wasip1 with the WASI SDK). It reads the event JSON on stdin and
   writes the result JSON on stdout; a non-zero exit is an error whose message is stderr. */
#include <stdio.h>
#include <string.h>

int main(void) {
    char event[4096];
    size_t length = fread(event, 1, sizeof event - 1, stdin);
    event[length] = '\0';
    char *key = strstr(event, "\"name\"");
    char *start = key ? strchr(key + 6, '"') : NULL;
    char *end = start ? strchr(start + 1, '"') : NULL;
    if (end == NULL) {
        fputs("the event has no name", stderr);
        return 3;
    }
    printf("{\"hi\":\"%.*s\"}", (int)(end - start - 1), start + 1);
    return 0;
}
