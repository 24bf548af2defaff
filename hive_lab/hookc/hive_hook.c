/* Hive Lab hook client in C: the same protocol as hive_lab/hook.py, without Python's ~8 ms
 * start-up (see "Hook protocol" in docs/CONTRACTS.md and benchmarks/RESULTS.md).
 *
 * Built by the server at start-up (hive_lab/core/installers.py, compile_client) into
 * <data_dir>/bin/hive_lab_hook with `cc -O2`; the Python client stays the fallback.
 *
 * Differences from the Python client, all on purpose:
 * - It sends `X-Hive-Client: c1`; the server then answers with headers instead of a JSON
 *   object (X-Hive-Exit-Code: 0|2, X-Hive-Stderr: percent-encoded UTF-8) and the body is
 *   exactly what goes to stdout (the `output` JSON + "\n", or empty). No JSON parser here.
 *   A 2xx answer without X-Hive-Exit-Code and with a non-empty body (a server that does not
 *   speak c1) is treated like the Python client's unreadable answer: spooled (the key makes
 *   a replay harmless).
 * - https hooks_url: it execs the Python client (paths compiled in via hive_hook_config.h),
 *   stdin untouched; without one configured, the event is spooled.
 * - SIGINT is ignored (Python turns Ctrl-C into "spool and exit 0"; here the call just
 *   finishes within its time budget).
 *
 * Never blocks or fails the agent: every failure path exits 0. Exit 2 only when the server
 * says so. C99 + POSIX, no dependencies.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#ifdef HIVE_HOOK_CONFIG
#include "hive_hook_config.h" /* HIVE_PY_EXE, HIVE_PY_CLIENT: the Python fallback for https */
#endif

#define PROTOCOL_VERSION 1
#define MAX_BODY (1 << 20)
#define DEFAULT_TIMEOUT 2.0
#define SPOOL_LOCK_TIMEOUT 1.0

/* ---- small buffers ------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->oom) return;
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) { b->oom = 1; return; }
    b->data = p;
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *s, size_t n) {
    buf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(buf_t *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- time ----------------------------------------------------------------------------- */

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Python's repr(float): the shortest digits that round-trip, fixed notation for decimal
 * exponents -4..15, else d.ddde+XX. Byte-identical spool lines and X-Hive-Fired values. */
static void repr_double(double v, char *out, size_t outsz) {
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    const char *p = tmp;
    char sign = 0;
    if (*p == '-') { sign = '-'; p++; }
    char digits[32];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 31) digits[nd++] = *p;
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    buf_t b = {0};
    if (sign) buf_add(&b, "-", 1);
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) buf_add(&b, i < nd ? &digits[i] : "0", 1);
            buf_add(&b, ".", 1);
            if (nd > exp + 1) buf_add(&b, digits + exp + 1, (size_t)(nd - exp - 1));
            else buf_add(&b, "0", 1);
        } else {
            buf_str(&b, "0.");
            for (int i = 0; i < -exp - 1; i++) buf_add(&b, "0", 1);
            buf_add(&b, digits, (size_t)nd);
        }
    } else {
        buf_add(&b, digits, 1);
        if (nd > 1) { buf_add(&b, ".", 1); buf_add(&b, digits + 1, (size_t)(nd - 1)); }
        buf_fmt(&b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    snprintf(out, outsz, "%s", b.data ? b.data : "0.0");
    free(b.data);
}

/* ---- JSON string literal, as Python's encode_basestring_ascii(bytes.decode("utf-8",
 * "surrogateescape")) writes it: each byte outside a well-formed UTF-8 sequence becomes
 * \udcXX, code points above U+FFFF a surrogate pair, lowercase hex. ------------------------ */

static int utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return 0;
    if (n < (size_t)len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return len;
}

static void json_u(buf_t *b, unsigned v) { buf_fmt(b, "\\u%04x", v); }

static void json_quote(buf_t *b, const unsigned char *s, size_t n) {
    buf_reserve(b, n + 2);
    buf_add(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = utf8_seq(s + i, n - i, &cp);
        if (!len) { json_u(b, 0xDC00 + s[i]); i++; continue; }
        i += (size_t)len;
        switch (cp) {
            case '"': buf_add(b, "\\\"", 2); continue;
            case '\\': buf_add(b, "\\\\", 2); continue;
            case '\n': buf_add(b, "\\n", 2); continue;
            case '\r': buf_add(b, "\\r", 2); continue;
            case '\t': buf_add(b, "\\t", 2); continue;
            case '\b': buf_add(b, "\\b", 2); continue;
            case '\f': buf_add(b, "\\f", 2); continue;
        }
        if (cp >= 0x20 && cp <= 0x7E) { char ch = (char)cp; buf_add(b, &ch, 1); }
        else if (cp < 0x10000) json_u(b, cp);
        else { cp -= 0x10000; json_u(b, 0xD800 + (cp >> 10)); json_u(b, 0xDC00 + (cp & 0x3FF)); }
    }
    buf_add(b, "\"", 1);
}

static void json_opt(buf_t *b, const char *s) {
    if (s) json_quote(b, (const unsigned char *)s, strlen(s));
    else buf_str(b, "null");
}

/* ---- I/O helpers ---------------------------------------------------------------------- */

static int read_fd_all(int fd, buf_t *b) {
    for (;;) {
        buf_reserve(b, 1 << 16);
        if (b->oom) return -1;
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        if (n == 0) { b->data[b->len] = 0; return 0; }
        b->len += (size_t)n;
    }
}

static int read_file(const char *path, buf_t *b) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = read_fd_all(fd, b);
    close(fd);
    return rc;
}

static void write_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR) continue; return; }
        s += w;
        n -= (size_t)w;
    }
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* like the Python client: empty counts as unset */
}

static int valid_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return n > 0 && n <= 64;
}

static void random_hex(char *out, size_t nbytes) {
    unsigned char raw[32];
    size_t got = 0;
    if (nbytes > sizeof raw) nbytes = sizeof raw;
#if defined(__linux__) && defined(SYS_getrandom)
    while (got < nbytes) {
        long n = syscall(SYS_getrandom, raw + got, nbytes - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
#endif
    if (got < nbytes) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        while (fd >= 0 && got < nbytes) {
            ssize_t n = read(fd, raw + got, nbytes - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (fd >= 0) close(fd);
    }
    if (got < nbytes) { /* no randomness at all: still unique enough per process and time */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        for (size_t i = got; i < nbytes; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            raw[i] = (unsigned char)x;
        }
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = 0;
}

/* ---- server.json: a small validating JSON walker that picks hooks_url and pid ---------- */

typedef struct {
    const char *p, *end;
} scan_t;

static void ws(scan_t *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a string; if out is given, stores it (ASCII only; else flags *nonascii). */
static int scan_string(scan_t *s, buf_t *out, int *nonascii) {
    if (s->p >= s->end || *s->p != '"') return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') return 0;
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (s->p >= s->end) return -1;
            char e = *s->p++;
            char ch;
            switch (e) {
                case '"': ch = '"'; break;
                case '\\': ch = '\\'; break;
                case '/': ch = '/'; break;
                case 'b': ch = '\b'; break;
                case 'f': ch = '\f'; break;
                case 'n': ch = '\n'; break;
                case 'r': ch = '\r'; break;
                case 't': ch = '\t'; break;
                case 'u': {
                    if (s->end - s->p < 4) return -1;
                    int v = 0;
                    for (int i = 0; i < 4; i++) {
                        int h = hexval(s->p[i]);
                        if (h < 0) return -1;
                        v = v * 16 + h;
                    }
                    s->p += 4;
                    if (v >= 0x80) { if (nonascii) *nonascii = 1; ch = '?'; }
                    else ch = (char)v;
                    break;
                }
                default: return -1;
            }
            if (out) buf_add(out, &ch, 1);
        } else {
            if (c >= 0x80 && nonascii) *nonascii = 1;
            if (out) buf_add(out, (char *)&c, 1);
        }
    }
    return -1;
}

/* A number; *is_int set when it has no fraction or exponent (Python's int). */
static int scan_number(scan_t *s, long long *ival, int *is_int) {
    const char *start = s->p;
    if (s->p < s->end && *s->p == '-') s->p++;
    if (s->p >= s->end) return -1;
    if (*s->p == '0') s->p++;
    else if (*s->p >= '1' && *s->p <= '9') while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    else return -1;
    *is_int = 1;
    if (s->p < s->end && *s->p == '.') {
        *is_int = 0;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        *is_int = 0;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    }
    if (*is_int) {
        char tmp[32];
        size_t n = (size_t)(s->p - start);
        if (n >= sizeof tmp) { *ival = -1; *is_int = 2; return 0; } /* too big for a pid */
        memcpy(tmp, start, n);
        tmp[n] = 0;
        errno = 0;
        *ival = strtoll(tmp, NULL, 10);
        if (errno) *is_int = 2;
    }
    return 0;
}

static int scan_value(scan_t *s, int depth);

static int scan_literal(scan_t *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n)) return -1;
    s->p += n;
    return 0;
}

static int scan_value(scan_t *s, int depth) {
    if (depth > 64) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    char c = *s->p;
    if (c == '"') return scan_string(s, NULL, NULL);
    if (c == '{' || c == '[') {
        char close_ch = c == '{' ? '}' : ']';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close_ch) { s->p++; return 0; }
        for (;;) {
            if (c == '{') {
                ws(s);
                if (scan_string(s, NULL, NULL)) return -1;
                ws(s);
                if (s->p >= s->end || *s->p++ != ':') return -1;
            }
            if (scan_value(s, depth + 1)) return -1;
            ws(s);
            if (s->p >= s->end) return -1;
            if (*s->p == ',') { s->p++; continue; }
            if (*s->p == close_ch) { s->p++; return 0; }
            return -1;
        }
    }
    if (c == 't') return scan_literal(s, "true");
    if (c == 'f') return scan_literal(s, "false");
    if (c == 'n') return scan_literal(s, "null");
    long long iv;
    int is_int;
    return scan_number(s, &iv, &is_int);
}

/* 0 on success: url filled (ASCII), *pid set (0 when absent or not a plain integer). */
static int parse_server_json(const char *text, size_t n, buf_t *url, long long *pid, int *pid_big) {
    scan_t s = {text, text + n};
    *pid = 0;
    *pid_big = 0;
    int have_url = 0;
    ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        /* valid JSON but not an object: no hooks_url */
        if (scan_value(&s, 0)) return -1;
        return -1;
    }
    s.p++;
    ws(&s);
    if (s.p < s.end && *s.p == '}') { s.p++; goto done; }
    for (;;) {
        buf_t key = {0};
        ws(&s);
        if (scan_string(&s, &key, NULL)) { free(key.data); return -1; }
        ws(&s);
        if (s.p >= s.end || *s.p++ != ':') { free(key.data); return -1; }
        ws(&s);
        int is_url = key.data && !strcmp(key.data, "hooks_url");
        int is_pid = key.data && !strcmp(key.data, "pid");
        free(key.data);
        if (is_url && s.p < s.end && *s.p == '"') {
            int nonascii = 0;
            url->len = 0;
            if (scan_string(&s, url, &nonascii)) return -1;
            have_url = url->len > 0 && !nonascii ? 1 : -1;
        } else if (is_url) {
            if (scan_value(&s, 0)) return -1;
            have_url = -1;
        } else if (is_pid && s.p < s.end && (*s.p == '-' || (*s.p >= '0' && *s.p <= '9'))) {
            long long v;
            int is_int;
            if (scan_number(&s, &v, &is_int)) return -1;
            if (is_int == 1) *pid = v;
            else if (is_int == 2) *pid_big = 1;
            else *pid = 0;
        } else if (is_pid) {
            if (scan_value(&s, 0)) return -1;
            *pid = 0;
        } else if (scan_value(&s, 0)) {
            return -1;
        }
        ws(&s);
        if (s.p >= s.end) return -1;
        if (*s.p == ',') { s.p++; continue; }
        if (*s.p == '}') { s.p++; break; }
        return -1;
    }
done:
    ws(&s);
    if (s.p != s.end) return -1;
    return have_url == 1 ? 0 : -1;
}

/* ---- URL ---------------------------------------------------------------------------- */

typedef struct {
    int https;
    char host[512];
    int port;
    char path[2048];
} url_t;

static int split_url(const char *url, url_t *u) {
    const char *sep = strstr(url, "://");
    if (!sep) return -1;
    size_t sl = (size_t)(sep - url);
    if (sl == 4 && !strncasecmp(url, "http", 4)) u->https = 0;
    else if (sl == 5 && !strncasecmp(url, "https", 5)) u->https = 1;
    else return -1;
    for (const char *c = url; *c; c++)
        if (*c == '\r' || *c == '\n' || *c == ' ') return -1;
    const char *rest = sep + 3;
    size_t rl = strcspn(rest, "#");
    size_t cut = strcspn(rest, "/?");
    if (cut > rl) cut = rl;
    const char *path = rest + cut;
    size_t pl = rl - cut;
    if (pl == 0) snprintf(u->path, sizeof u->path, "/");
    else if (*path == '?') {
        if (pl + 2 > sizeof u->path) return -1;
        snprintf(u->path, sizeof u->path, "/%.*s", (int)pl, path);
    } else {
        if (pl + 1 > sizeof u->path) return -1;
        snprintf(u->path, sizeof u->path, "%.*s", (int)pl, path);
    }
    char hp[512];
    if (cut >= sizeof hp) return -1;
    memcpy(hp, rest, cut);
    hp[cut] = 0;
    u->port = u->https ? 443 : 80;
    const char *port_text = NULL;
    if (hp[0] == '[') {
        char *close_br = strchr(hp, ']');
        if (!close_br) { snprintf(u->host, sizeof u->host, "%s", hp + 1); }
        else {
            *close_br = 0;
            snprintf(u->host, sizeof u->host, "%s", hp + 1);
            if (close_br[1] == ':') port_text = close_br + 2;
        }
    } else {
        char *colon = strrchr(hp, ':');
        if (colon) { *colon = 0; port_text = colon + 1; }
        snprintf(u->host, sizeof u->host, "%s", hp);
    }
    if (port_text) {
        if (!*port_text || strlen(port_text) > 5) return -1;
        for (const char *c = port_text; *c; c++) if (*c < '0' || *c > '9') return -1;
        u->port = atoi(port_text);
        if (u->port < 1 || u->port > 65535) return -1;
    }
    if (!u->host[0] || strchr(u->host, '@')) return -1;
    return 0;
}

/* ---- HTTP over a non-blocking socket, every step under one deadline -------------------- */

static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - monotonic();
        if (left <= 0) return -1;
        struct pollfd p = {fd, events, 0};
        int ms = (int)(left * 1000) + 1;
        int r = poll(&p, 1, ms);
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return -1;
    }
}

static int connect_to(const url_t *u, double deadline) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    if (getaddrinfo(u->host, port, &hints, &res) || !res) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) break;
        }
        close(fd);
        fd = -1;
        if (monotonic() >= deadline) break;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *s, size_t n, double deadline) {
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLOUT, deadline)) return -1;
                continue;
            }
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct {
    int status;
    int has_exit;   /* X-Hive-Exit-Code seen */
    int exit_code;  /* 2 or 0 */
    buf_t stderr_enc; /* X-Hive-Stderr, still percent-encoded */
    buf_t body;
} answer_t;

/* Body of a complete chunked message into out; 1 done, 0 incomplete, -1 malformed. */
static int dechunk(const char *d, size_t n, buf_t *out) {
    size_t pos = 0;
    out->len = 0;
    for (;;) {
        const char *nl = memmem(d + pos, n - pos, "\r\n", 2);
        if (!nl) return 0;
        size_t size = 0;
        const char *c = d + pos;
        while (c < nl && (*c == ' ' || *c == '\t')) c++;
        int digits = 0;
        for (; c < nl && hexval(*c) >= 0; c++, digits++) {
            if (size > (SIZE_MAX >> 5)) return -1;
            size = size * 16 + (size_t)hexval(*c);
        }
        while (c < nl && (*c == ' ' || *c == '\t')) c++;
        if (c < nl && *c != ';') return -1;
        if (size == 0) return 1;
        size_t start = (size_t)(nl - d) + 2;
        if (n < start + size + 2) return 0;
        buf_add(out, d + start, size);
        pos = start + size + 2;
        (void)digits;
    }
}

static int header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen) {
    size_t nl = strlen(name);
    const char *colon = memchr(line, ':', len);
    if (!colon) return 0;
    size_t kl = (size_t)(colon - line);
    while (kl && (line[kl - 1] == ' ' || line[kl - 1] == '\t')) kl--;
    size_t ks = 0;
    while (ks < kl && (line[ks] == ' ' || line[ks] == '\t')) ks++;
    if (kl - ks != nl || strncasecmp(line + ks, name, nl)) return 0;
    const char *v = colon + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return 1;
}

/* 0 with a complete answer; -1 if the exchange failed (then: spool). */
static int read_response(int fd, double deadline, answer_t *a) {
    buf_t in = {0};
    long long length = -1;
    int chunked = 0;
    size_t head_end = (size_t)-1;
    int rc = -1;
    for (;;) {
        if (head_end == (size_t)-1 && in.len >= 4) {
            const char *e = memmem(in.data, in.len, "\r\n\r\n", 4);
            if (e) {
                head_end = (size_t)(e - in.data);
                const char *line = in.data, *stop = in.data + head_end;
                const char *eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
                if (!eol) eol = stop;
                if ((size_t)(eol - line) < 12 || strncmp(line, "HTTP/", 5)) goto out;
                const char *sp = memchr(line, ' ', (size_t)(eol - line));
                if (!sp) goto out;
                a->status = atoi(sp + 1);
                if (a->status < 100 || a->status > 999) goto out;
                while (eol < stop) {
                    line = eol + 2;
                    eol = memmem(line, (size_t)(stop - line), "\r\n", 2);
                    if (!eol) eol = stop;
                    size_t len = (size_t)(eol - line);
                    const char *v;
                    size_t vl;
                    if (header_is(line, len, "content-length", &v, &vl)) {
                        char tmp[32];
                        if (vl == 0 || vl >= sizeof tmp) goto out;
                        memcpy(tmp, v, vl);
                        tmp[vl] = 0;
                        char *endp;
                        length = strtoll(tmp, &endp, 10);
                        if (*endp || length < 0) goto out;
                    } else if (header_is(line, len, "transfer-encoding", &v, &vl)) {
                        for (size_t i = 0; i + 7 <= vl; i++)
                            if (!strncasecmp(v + i, "chunked", 7)) chunked = 1;
                    } else if (header_is(line, len, "x-hive-exit-code", &v, &vl)) {
                        a->has_exit = 1;
                        a->exit_code = (vl == 1 && v[0] == '2') ? 2 : 0;
                    } else if (header_is(line, len, "x-hive-stderr", &v, &vl)) {
                        a->stderr_enc.len = 0;
                        buf_add(&a->stderr_enc, v, vl);
                    }
                }
                if (a->status == 204 || a->status == 304 || (a->status >= 100 && a->status < 200)) length = 0;
            }
        }
        if (head_end != (size_t)-1) {
            const char *payload = in.data + head_end + 4;
            size_t plen = in.len - head_end - 4;
            if (chunked) {
                int d = dechunk(payload, plen, &a->body);
                if (d < 0) goto out;
                if (d == 1) { rc = 0; goto out; }
            } else if (length >= 0 && (size_t)length <= plen) {
                a->body.len = 0;
                buf_add(&a->body, payload, (size_t)length);
                rc = 0;
                goto out;
            }
        }
        buf_reserve(&in, 1 << 16);
        if (in.oom) goto out;
        ssize_t n = recv(fd, in.data + in.len, in.cap - in.len - 1, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLIN, deadline)) goto out;
                continue;
            }
            goto out;
        }
        if (n == 0) { /* closed: the body ends here if no length was announced */
            if (head_end != (size_t)-1 && length < 0 && !chunked) {
                a->body.len = 0;
                buf_add(&a->body, in.data + head_end + 4, in.len - head_end - 4);
                rc = 0;
            } else if (a->status >= 400 && a->status < 500) {
                a->body.len = 0;
                rc = 0;
            }
            goto out;
        }
        in.len += (size_t)n;
        in.data[in.len] = 0;
    }
out:
    free(in.data);
    return rc;
}

/* ---- the spool ------------------------------------------------------------------------ */

static int lock_until(int fd, double deadline) {
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 1;
        if (errno != EWOULDBLOCK && errno != EINTR) return 0;
        if (monotonic() >= deadline) return 0;
        sleep_ms(2);
    }
}

/* One write() under flock; the open file must still be the one at path after locking
 * (a drain renames, then locks). A partial line of a killed writer gets its newline first;
 * a short write of our own is undone. Same algorithm as hook.append_line. */
static int append_line(const char *path, const char *line, size_t n) {
    double deadline = monotonic() + SPOOL_LOCK_TIMEOUT;
    int flags = O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path, flags, 0600);
        if (fd < 0) return 0;
        if (!lock_until(fd, deadline)) { close(fd); return 0; }
        struct stat mine, there;
        if (fstat(fd, &mine) || lstat(path, &there) || mine.st_ino != there.st_ino ||
            mine.st_dev != there.st_dev) {
            close(fd);
            continue; /* renamed away by a drain: open the new file */
        }
        off_t size = mine.st_size;
        buf_t data = {0};
        if (size) {
            char last = 0;
            if (pread(fd, &last, 1, size - 1) != 1 || last != '\n') buf_add(&data, "\n", 1);
        }
        buf_add(&data, line, n);
        if (data.oom) { free(data.data); close(fd); return 0; }
        ssize_t w = write(fd, data.data, data.len);
        int ok = w == (ssize_t)data.len;
        if (!ok && ftruncate(fd, size)) { /* nothing more we can do */ }
        free(data.data);
        close(fd); /* also releases the lock */
        return ok;
    }
    return 0;
}

static void spool_event(const char *data_dir, const char *session, const char *install,
                        const char *agent, const char *key, const char *fired,
                        const char *body, size_t body_len) {
    if (body_len > MAX_BODY) return; /* the server refuses those: never spooled */
    buf_t line = {0};
    buf_fmt(&line, "{\"v\": %d, \"session\": ", PROTOCOL_VERSION);
    json_opt(&line, session);
    buf_str(&line, ", \"install\": ");
    json_opt(&line, install);
    buf_str(&line, ", \"agent\": ");
    json_opt(&line, agent);
    buf_str(&line, ", \"key\": ");
    json_opt(&line, key);
    buf_str(&line, ", \"fired\": ");
    buf_str(&line, fired);
    buf_str(&line, ", \"body\": ");
    json_quote(&line, (const unsigned char *)body, body_len);
    buf_str(&line, "}\n");
    if (line.oom) { free(line.data); return; }

    buf_t dir = {0}, path = {0};
    buf_str(&dir, data_dir);
    buf_str(&dir, "/spool");
    mkdir(dir.data, 0700);
    const char *stem_prefix = install ? "install-" : "session-";
    const char *stem_name = install ? install : session;
    buf_fmt(&path, "%s/%s", dir.data, stem_prefix);
    buf_str(&path, stem_name);
    buf_str(&path, ".jsonl");
    if (!append_line(path.data, line.data, line.len)) {
        char rnd[9];
        random_hex(rnd, 4);
        path.len = 0;
        buf_fmt(&path, "%s/%s", dir.data, stem_prefix);
        buf_str(&path, stem_name);
        buf_fmt(&path, ".%d-%s.jsonl", (int)getpid(), rnd);
        append_line(path.data, line.data, line.len);
    }
    free(line.data);
    free(dir.data);
    free(path.data);
}

/* ---- the hook call ---------------------------------------------------------------------- */

static double hook_timeout(void) {
    const char *v = env("HIVE_LAB_HOOK_TIMEOUT");
    if (!v) return DEFAULT_TIMEOUT;
    char *end;
    double t = strtod(v, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    if (end == v || *end) return DEFAULT_TIMEOUT;
    return (t > 0 && t < 3600) ? t : DEFAULT_TIMEOUT;
}

/* Bytes strip (ASCII whitespace), then visible ASCII only, 1..512 chars. */
static int read_secret(const char *path, char *out, size_t outsz) {
    buf_t b = {0};
    if (read_file(path, &b) || !b.data) { free(b.data); return -1; }
    size_t s = 0, e = b.len;
    while (s < e && (b.data[s] == ' ' || (b.data[s] >= '\t' && b.data[s] <= '\r'))) s++;
    while (e > s && (b.data[e - 1] == ' ' || (b.data[e - 1] >= '\t' && b.data[e - 1] <= '\r'))) e--;
    size_t n = e - s;
    int ok = n > 0 && n <= 512 && n < outsz;
    for (size_t i = s; ok && i < e; i++)
        if (b.data[i] < '!' || b.data[i] > '~') ok = 0;
    if (ok) { memcpy(out, b.data + s, n); out[n] = 0; }
    free(b.data);
    return ok ? 0 : -1;
}

static char *default_data_dir(void) {
    buf_t b = {0};
    const char *base = env("JUPYTER_DATA_DIR");
    if (base) buf_str(&b, base);
    else {
        const char *home = env("HOME");
        if (!home) return NULL;
#ifdef __APPLE__
        const char *pd = env("JUPYTER_PLATFORM_DIRS");
        int platform_dirs = pd && (!strcasecmp(pd, "1") || !strcasecmp(pd, "true") ||
                                   !strcasecmp(pd, "yes") || !strcasecmp(pd, "on"));
        buf_str(&b, home);
        buf_str(&b, platform_dirs ? "/Library/Application Support/jupyter" : "/Library/Jupyter");
#else
        const char *xdg = env("XDG_DATA_HOME");
        if (xdg) buf_str(&b, xdg);
        else { buf_str(&b, home); buf_str(&b, "/.local/share"); }
        buf_str(&b, "/jupyter");
#endif
    }
    buf_str(&b, "/hive_lab");
    return b.oom ? NULL : b.data;
}

/* Outcome of the POST. */
enum { DELIVERED, UNDELIVERED, REFUSED };

static int server_url(const char *data_dir, url_t *u) {
    buf_t path = {0}, text = {0}, url = {0};
    buf_str(&path, data_dir);
    buf_str(&path, "/server.json");
    int rc = -1;
    long long pid;
    int pid_big;
    if (read_file(path.data, &text) == 0 && text.data &&
        parse_server_json(text.data, text.len, &url, &pid, &pid_big) == 0 && !pid_big &&
        split_url(url.data, u) == 0) {
        rc = 0;
        if (pid > 0) {
            if (pid > 0x7fffffffLL) rc = -1;
            else if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) rc = -1; /* stale server.json */
        }
    }
    free(path.data);
    free(text.data);
    free(url.data);
    return rc;
}

static int deliver(const url_t *u, const char *data_dir, const char *session, const char *install,
                   const char *agent, const char *key, const char *fired,
                   const char *body, size_t body_len, answer_t *a) {
    char secret[520];
    buf_t path = {0};
    buf_str(&path, data_dir);
    if (install) { buf_str(&path, "/installs/"); buf_str(&path, install); buf_str(&path, ".secret"); }
    else { buf_str(&path, "/sessions/"); buf_str(&path, session); buf_str(&path, "/secret"); }
    int have_secret = !path.oom && read_secret(path.data, secret, sizeof secret) == 0;
    free(path.data);
    if (!have_secret) return UNDELIVERED;

    double deadline = monotonic() + hook_timeout();
    buf_t req = {0};
    buf_fmt(&req, "POST %s HTTP/1.1\r\nHost: ", u->path);
    if (strchr(u->host, ':')) buf_fmt(&req, "[%s]:%d\r\n", u->host, u->port);
    else buf_fmt(&req, "%s:%d\r\n", u->host, u->port);
    buf_fmt(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n", body_len);
    buf_str(&req, install ? "X-Hive-Install: " : "X-Hive-Session: ");
    buf_str(&req, install ? install : session);
    buf_str(&req, "\r\nX-Hive-Secret: ");
    buf_str(&req, secret);
    buf_str(&req, "\r\nX-Hive-Key: ");
    buf_str(&req, key);
    buf_str(&req, "\r\nX-Hive-Fired: ");
    buf_str(&req, fired);
    buf_str(&req, "\r\nX-Hive-Agent: ");
    buf_str(&req, agent);
    buf_str(&req, "\r\nX-Hive-Client: c1\r\n\r\n");
    buf_add(&req, body, body_len);
    memset(secret, 0, sizeof secret);
    if (req.oom) { free(req.data); return UNDELIVERED; }

    int result = UNDELIVERED;
    int fd = connect_to(u, deadline);
    if (fd >= 0) {
        if (send_all(fd, req.data, req.len, deadline) == 0 && read_response(fd, deadline, a) == 0) {
            int st = a->status;
            if (st >= 400 && st < 500 && st != 408 && st != 429) result = REFUSED;
            else if (st >= 200 && st < 300) {
                int blank = 1;
                for (size_t i = 0; i < a->body.len; i++) {
                    char c = a->body.data[i];
                    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') { blank = 0; break; }
                }
                /* no c1 headers: only an empty answer is readable (like the Python client) */
                result = (a->has_exit || blank) ? DELIVERED : UNDELIVERED;
            }
        }
        close(fd);
    }
    memset(req.data, 0, req.len);
    free(req.data);
    return result;
}

static void respond(const answer_t *a) {
    if (!a->has_exit) return;
    if (a->body.len) write_all(1, a->body.data, a->body.len);
    if (a->stderr_enc.len) {
        buf_t out = {0};
        const char *s = a->stderr_enc.data;
        for (size_t i = 0; i < a->stderr_enc.len; i++) {
            int h1, h2;
            if (s[i] == '%' && i + 2 < a->stderr_enc.len && (h1 = hexval(s[i + 1])) >= 0 &&
                (h2 = hexval(s[i + 2])) >= 0) {
                char c = (char)(h1 * 16 + h2);
                buf_add(&out, &c, 1);
                i += 2;
            } else {
                buf_add(&out, s + i, 1);
            }
        }
        if (out.len) write_all(2, out.data, out.len);
        free(out.data);
    }
}

typedef struct {
    const char *agent, *install, *data_dir, *payload_arg;
    int argv_payload;
} opts_t;

/* --agent NAME, --install ID, --dir PATH (also as --x=v), --argv-payload; with
 * --argv-payload anywhere but last, the last argument is the payload. Unknown options are
 * ignored: an agent must not fail because a newer installer added a flag. */
static void parse_args(int argc, char **argv, opts_t *o) {
    memset(o, 0, sizeof *o);
    int n = argc - 1;
    char **args = argv + 1;
    for (int i = 0; i < n - 1; i++)
        if (!strcmp(args[i], "--argv-payload")) {
            o->argv_payload = 1;
            o->payload_arg = args[n - 1];
            n--;
            break;
        }
    for (int i = 0; i < n; i++) {
        const char *arg = args[i];
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        const char **slot = NULL;
        if (nl == 7 && !strncmp(arg, "--agent", 7)) slot = &o->agent;
        else if (nl == 9 && !strncmp(arg, "--install", 9)) slot = &o->install;
        else if (nl == 5 && !strncmp(arg, "--dir", 5)) slot = &o->data_dir;
        if (slot) {
            if (eq) *slot = eq + 1;
            else { i++; *slot = i < n ? args[i] : ""; }
        } else if (!strcmp(arg, "--argv-payload")) {
            o->argv_payload = 1;
        }
    }
}

static void drain_stdin(const opts_t *o) {
    if (o->argv_payload) return;
    char sink[1 << 14];
    for (;;) {
        ssize_t n = read(0, sink, sizeof sink);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        return;
    }
}

static void exec_python_fallback(char **argv) {
#if defined(HIVE_PY_EXE) && defined(HIVE_PY_CLIENT)
    int argc = 0;
    while (argv[argc]) argc++;
    char **args = calloc((size_t)argc + 6, sizeof *args);
    if (!args) return;
    int k = 0;
    args[k++] = (char *)HIVE_PY_EXE;
    args[k++] = "-S";
    args[k++] = "-E";
    args[k++] = "-s";
    args[k++] = (char *)HIVE_PY_CLIENT;
    for (int i = 1; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    if (access(HIVE_PY_CLIENT, R_OK) == 0) {
        signal(SIGINT, SIG_DFL); /* the Python client turns Ctrl-C into "spool, exit 0" itself */
        signal(SIGPIPE, SIG_DFL);
        execv(HIVE_PY_EXE, args);
        signal(SIGINT, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
    }
    free(args); /* exec failed: the caller spools */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* Ctrl-C in the agent's pane reaches us too: finish the call */
    opts_t o;
    parse_args(argc, argv, &o);
    if (o.install && env("HIVE_LAB_SESSION")) { drain_stdin(&o); return 0; } /* the session's own entry reports it */
    const char *session = o.install ? NULL : env("HIVE_LAB_SESSION");
    const char *data_dir = (o.data_dir && *o.data_dir) ? o.data_dir : env("HIVE_LAB_DIR");
    char *default_dir = NULL;
    if (!data_dir && o.install) data_dir = default_dir = default_data_dir();
    if (!data_dir || (!o.install && !session) || !valid_name(o.install ? o.install : session)) {
        drain_stdin(&o); /* outside Hive Lab, or a name that would leave the data dir */
        return 0;
    }
    const char *agent = (o.agent && *o.agent) ? o.agent : env("HIVE_LAB_AGENT");
    if (!agent || !valid_name(agent)) agent = "";

    url_t u;
    memset(&u, 0, sizeof u);
    int have_url = server_url(data_dir, &u) == 0;
    if (have_url && u.https) {
        exec_python_fallback(argv); /* TLS: the Python client does it (returns only on failure) */
        have_url = 0;
    }

    buf_t body = {0};
    if (o.argv_payload) {
        if (o.payload_arg) buf_str(&body, o.payload_arg);
    } else if (read_fd_all(0, &body)) {
        /* unreadable stdin: send what we have */
    }
    const char *body_data = body.data ? body.data : "";
    char key[33], fired[64];
    random_hex(key, 16);
    repr_double(wall_time(), fired, sizeof fired);

    answer_t a;
    memset(&a, 0, sizeof a);
    int outcome = have_url ? deliver(&u, data_dir, session, o.install, agent, key, fired,
                                     body_data, body.len, &a)
                           : UNDELIVERED;
    int code = 0;
    if (outcome == UNDELIVERED)
        spool_event(data_dir, session, o.install, agent, key, fired, body_data, body.len);
    else if (outcome == DELIVERED) {
        respond(&a);
        code = a.has_exit && a.exit_code == 2 ? 2 : 0;
    }
    free(default_dir);
    _exit(code);
}
