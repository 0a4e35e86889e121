/*
 * cni-wasm native shim: what a runtime execs as /opt/cni/bin/<type>.
 *
 * It forwards the CNI call (environment, stdin and the identity of its own
 * network namespace) to a resident `cni-wasm daemon` over a root-only unix
 * socket and relays the daemon's stdout and exit code. When there is no
 * daemon (socket absent or refused), or the daemon answers that it cannot
 * serve this caller (another network namespace, not root, busy), it execs
 * `node bin/cni-wasm.cjs --type <type> [--policy P]` itself: exec mode, with
 * stdin given back unchanged. So it is always a drop-in.
 *
 * Its settings are not compiled in: `cni-wasm install` copies this binary and
 * writes them into the CONFIG block below (key=value lines after the marker).
 *
 * Wire format (both ways): a 4-byte big-endian length, then that many bytes
 * of JSON. Request: {"v":1,"op":"call","type":..,"policy":..,"netns":{"dev":
 * ..,"ino":..},"env":{..},"stdin":".."}. Reply: {"exitCode":N,"stdout":".."},
 * or {"fallback":"why"} (run it yourself), or {"error":"why"}.
 *
 * A connection lost after the whole request was sent is ambiguous (the call
 * may have run in part). DEL, CHECK, GC, STATUS and VERSION are safe to
 * repeat, so they fall back to exec mode; an ADD reports a CNI error (the
 * runtime then DELs, and the daemon's write-ahead ledger lets that DEL sweep
 * whatever the interrupted ADD made).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MARKER "@@CNI-WASM-SHIM-CONFIG-V1@@\n"
#define CONFIG_SIZE 4096
/* Whole frames, either way; the daemon enforces the same bound. */
#define MAX_FRAME (16u << 20)
/* stdin larger than this is left to exec mode (room for env and escaping). */
#define MAX_STDIN (6u << 20)
#define REPLY_TIMEOUT_SEC 600

/* Patched by `cni-wasm install`; external linkage so it is read, not folded. */
char cniwasm_shim_config[CONFIG_SIZE] = MARKER;

extern char **environ;

static char cfg_socket[1024] = "/run/cni-wasm/cni-wasm.sock";
static char cfg_node[1024] = "/usr/bin/node";
static char cfg_entry[1024] = "";
static char cfg_type[256] = "";
static char cfg_policy[1024] = "";
static int debug;

static void note(const char *fmt, const char *a)
{
  if (debug) fprintf(stderr, fmt, a);
}

static void set(char *dst, size_t cap, const char *v, size_t n)
{
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

static void read_config(void)
{
  const volatile char *c = cniwasm_shim_config;
  char buf[CONFIG_SIZE + 1];
  for (size_t i = 0; i < CONFIG_SIZE; i++) buf[i] = c[i];
  buf[CONFIG_SIZE] = 0;
  size_t ml = strlen(MARKER);
  if (strncmp(buf, MARKER, ml) != 0) return;
  char *p = buf + ml;
  while (*p) {
    char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char *eq = memchr(p, '=', len);
    if (eq) {
      size_t kl = (size_t)(eq - p), vl = len - kl - 1;
      const char *v = eq + 1;
      if (kl == 6 && !strncmp(p, "socket", 6)) set(cfg_socket, sizeof cfg_socket, v, vl);
      else if (kl == 4 && !strncmp(p, "node", 4)) set(cfg_node, sizeof cfg_node, v, vl);
      else if (kl == 5 && !strncmp(p, "entry", 5)) set(cfg_entry, sizeof cfg_entry, v, vl);
      else if (kl == 4 && !strncmp(p, "type", 4)) set(cfg_type, sizeof cfg_type, v, vl);
      else if (kl == 6 && !strncmp(p, "policy", 6)) set(cfg_policy, sizeof cfg_policy, v, vl);
    }
    if (!nl) break;
    p = nl + 1;
  }
}

/* ---- a growable byte buffer -------------------------------------------- */
struct buf { char *p; size_t n, cap; };

static int grow(struct buf *b, size_t more)
{
  if (b->n + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->n + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int put(struct buf *b, const void *s, size_t n)
{
  if (grow(b, n)) return -1;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

static int puts_(struct buf *b, const char *s) { return put(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are. */
static int put_json(struct buf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  if (grow(b, n + 2)) return -1;
  b->p[b->n++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { char e[2] = { '\\', (char)c }; if (put(b, e, 2)) return -1; }
    else if (c == '\n') { if (put(b, "\\n", 2)) return -1; }
    else if (c == '\t') { if (put(b, "\\t", 2)) return -1; }
    else if (c == '\r') { if (put(b, "\\r", 2)) return -1; }
    else if (c < 0x20 || c == 0x7f) {
      char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      if (put(b, e, 6)) return -1;
    } else if (put(b, &s[i], 1)) return -1;
  }
  return put(b, "\"", 1);
}

/* ---- exec mode ---------------------------------------------------------- */
static struct buf in;       /* stdin as read so far */
static int stdin_eof;

/* Gives the program we exec the stdin we took: what we read, then the rest. */
static void restore_stdin(void)
{
  if (in.n == 0 && !stdin_eof) return; /* nothing taken: fd 0 is as it was */
  int fd = memfd_create("cni-wasm-stdin", MFD_CLOEXEC);
  if (fd < 0) return;
  size_t off = 0;
  while (off < in.n) {
    ssize_t w = write(fd, in.p + off, in.n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { close(fd); return; }
    off += (size_t)w;
  }
  if (!stdin_eof) {
    char chunk[65536];
    for (;;) {
      ssize_t r = read(0, chunk, sizeof chunk);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (write(fd, chunk, (size_t)r) != r) break;
    }
  }
  lseek(fd, 0, SEEK_SET);
  dup2(fd, 0); /* dup2 clears close-on-exec on fd 0 */
  close(fd);
}

static void cni_error(const char *version, int code, const char *msg)
{
  struct buf o = { 0 };
  puts_(&o, "{\"cniVersion\":");
  put_json(&o, version, strlen(version));
  char c[32];
  snprintf(c, sizeof c, ",\"code\":%d,\"msg\":", code);
  puts_(&o, c);
  put_json(&o, msg, strlen(msg));
  puts_(&o, "}\n");
  if (o.p) { ssize_t w = write(1, o.p, o.n); (void)w; }
}

/* The config's cniVersion, when it is a plain string; else the newest. */
static void config_version(char *out, size_t cap)
{
  snprintf(out, cap, "1.1.0");
  if (!in.p) return;
  char *s = memmem(in.p, in.n, "\"cniVersion\"", 12);
  if (!s) return;
  char *end = in.p + in.n;
  s += 12;
  while (s < end && (*s == ' ' || *s == ':' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  if (s >= end || *s != '"') return;
  s++;
  char *q = memchr(s, '"', (size_t)(end - s));
  if (!q || q - s >= (long)cap || q - s > 16) return;
  memcpy(out, s, (size_t)(q - s));
  out[q - s] = 0;
}

/* the shim's own arguments, passed on in exec mode when run by hand */
#define MAX_PASSED_ARGS 64
static int shim_argc;
static char **shim_argv;

static void exec_mode(const char *type, const char *why) __attribute__((noreturn));
static void exec_mode(const char *type, const char *why)
{
  note("cni-wasm-shim: exec mode (%s)\n", why);
  restore_stdin();
  char *argv[8 + MAX_PASSED_ARGS];
  int i = 0;
  argv[i++] = cfg_node;
  argv[i++] = cfg_entry;
  argv[i++] = "--type";
  argv[i++] = (char *)type;
  if (cfg_policy[0]) { argv[i++] = "--policy"; argv[i++] = cfg_policy; }
  /* run by hand (no CNI_COMMAND), its own arguments go on: `dhcp daemon -socketpath ...` */
  const char *command = getenv("CNI_COMMAND");
  if (!command || !*command)
    for (int k = 1; k < shim_argc && k <= MAX_PASSED_ARGS; k++) argv[i++] = shim_argv[k];
  argv[i] = NULL;
  execv(cfg_node, argv);
  char msg[1400];
  snprintf(msg, sizeof msg, "cni-wasm shim cannot run %s: %s", cfg_node, strerror(errno));
  char v[32];
  config_version(v, sizeof v);
  cni_error(v, 999, msg);
  exit(1);
}

/* ---- the daemon --------------------------------------------------------- */
static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, char *p, size_t n)
{
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes the JSON string starting at *s (at its opening quote) into out. */
static int get_json_string(const char **s, const char *end, struct buf *out)
{
  const char *p = *s;
  if (p >= end || *p != '"') return -1;
  p++;
  while (p < end && *p != '"') {
    if (*p != '\\') {
      const char *q = p;
      while (q < end && *q != '"' && *q != '\\') q++;
      if (put(out, p, (size_t)(q - p))) return -1;
      p = q;
      continue;
    }
    if (++p >= end) return -1;
    char c = *p++;
    char e;
    switch (c) {
    case 'n': e = '\n'; break;
    case 't': e = '\t'; break;
    case 'r': e = '\r'; break;
    case 'b': e = '\b'; break;
    case 'f': e = '\f'; break;
    case 'u': {
      unsigned cp = 0;
      for (int k = 0; k < 4; k++) {
        int h = p < end ? hexval(*p++) : -1;
        if (h < 0) return -1;
        cp = cp * 16 + (unsigned)h;
      }
      if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
        unsigned lo = 0;
        int ok = 1;
        for (int k = 2; k < 6; k++) { int h = hexval(p[k]); if (h < 0) { ok = 0; break; } lo = lo * 16 + (unsigned)h; }
        if (ok && lo >= 0xdc00 && lo < 0xe000) { cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00); p += 6; }
      }
      char u[4];
      int n;
      if (cp < 0x80) { u[0] = (char)cp; n = 1; }
      else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
      else if (cp < 0x10000) { u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63)); n = 3; }
      else { u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63)); u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4; }
      if (put(out, u, (size_t)n)) return -1;
      continue;
    }
    default: e = c; break; /* \" \\ \/ */
    }
    if (put(out, &e, 1)) return -1;
  }
  if (p >= end) return -1;
  *s = p + 1;
  return 0;
}

/* The value of "key": in a flat JSON object the daemon wrote (no nesting). */
static const char *find_key(const char *body, const char *end, const char *key)
{
  char k[32];
  int kl = snprintf(k, sizeof k, "\"%s\":", key);
  const char *s = memmem(body, (size_t)(end - body), k, (size_t)kl);
  return s ? s + kl : NULL;
}

int main(int argc, char **argv)
{
  shim_argc = argc;
  shim_argv = argv;
  debug = getenv("CNI_WASM_SHIM_DEBUG") != NULL;
  read_config();
  const char *type = cfg_type;
  if (!type[0]) {
    const char *b = strrchr(argv[0], '/');
    type = b ? b + 1 : argv[0];
  }
  const char *command = getenv("CNI_COMMAND");
  if (!command || !*command) exec_mode(type, "no CNI_COMMAND");
  if (getenv("CNI_WASM_NO_DAEMON")) exec_mode(type, "CNI_WASM_NO_DAEMON is set");

  /* stdin, bounded */
  for (;;) {
    if (in.n >= MAX_STDIN) exec_mode(type, "stdin too large for the daemon");
    if (grow(&in, 65536)) exec_mode(type, "out of memory");
    ssize_t r = read(0, in.p + in.n, in.cap - in.n < MAX_STDIN - in.n ? in.cap - in.n : MAX_STDIN - in.n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { stdin_eof = 1; break; }
    if (r == 0) { stdin_eof = 1; break; }
    in.n += (size_t)r;
  }

  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) < 0) exec_mode(type, "cannot stat /proc/self/ns/net");

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) exec_mode(type, "no unix socket");
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(cfg_socket) >= sizeof sa.sun_path) exec_mode(type, "socket path too long");
  strcpy(sa.sun_path, cfg_socket);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    static char why[1200];
    snprintf(why, sizeof why, "no daemon at %s: %s", cfg_socket, strerror(errno));
    close(fd);
    exec_mode(type, why);
  }
  struct timeval tv = { .tv_sec = REPLY_TIMEOUT_SEC };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct timeval stv = { .tv_sec = 30 };
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);

  struct buf req = { 0 };
  char num[96];
  int bad = put(&req, "\0\0\0\0", 4) || puts_(&req, "{\"v\":1,\"op\":\"call\",\"type\":") || put_json(&req, type, strlen(type));
  bad = bad || puts_(&req, ",\"policy\":") || (cfg_policy[0] ? put_json(&req, cfg_policy, strlen(cfg_policy)) : puts_(&req, "null"));
  snprintf(num, sizeof num, ",\"netns\":{\"dev\":%llu,\"ino\":%llu},\"env\":{", (unsigned long long)ns.st_dev, (unsigned long long)ns.st_ino);
  bad = bad || puts_(&req, num);
  int first = 1;
  for (char **e = environ; *e && !bad; e++) {
    char *eq = strchr(*e, '=');
    if (!eq) continue;
    if (!first) bad = puts_(&req, ",");
    first = 0;
    bad = bad || put_json(&req, *e, (size_t)(eq - *e)) || puts_(&req, ":") || put_json(&req, eq + 1, strlen(eq + 1));
  }
  bad = bad || puts_(&req, "},\"stdin\":") || put_json(&req, in.p ? in.p : "", in.n) || puts_(&req, "}");
  if (bad) exec_mode(type, "out of memory");
  if (req.n - 4 > MAX_FRAME) { close(fd); exec_mode(type, "request too large for the daemon"); }
  uint32_t len = (uint32_t)(req.n - 4);
  req.p[0] = (char)(len >> 24); req.p[1] = (char)(len >> 16); req.p[2] = (char)(len >> 8); req.p[3] = (char)len;
  if (write_all(fd, req.p, req.n) < 0) { close(fd); exec_mode(type, "the daemon closed the connection before the request was sent"); }
  free(req.p);

  unsigned char h[4];
  struct buf rep = { 0 };
  int lost = read_all(fd, (char *)h, 4) < 0;
  uint32_t rl = 0;
  if (!lost) {
    rl = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    lost = rl > MAX_FRAME + 1024 || grow(&rep, rl + 1) || read_all(fd, rep.p, rl) < 0;
  }
  close(fd);
  if (lost) {
    if (strcmp(command, "ADD") != 0) exec_mode(type, "the daemon went away during the call; repeating it in exec mode");
    char v[32];
    config_version(v, sizeof v);
    cni_error(v, 999, "the cni-wasm daemon went away during ADD; the call may have run in part (a DEL of this attachment removes what it made)");
    return 1;
  }
  const char *body = rep.p, *end = rep.p + rl;
  const char *v;
  if ((v = find_key(body, end, "fallback"))) {
    static struct buf why;
    if (get_json_string(&v, end, &why) || put(&why, "", 1)) exec_mode(type, "the daemon sent it back");
    exec_mode(type, why.p);
  }
  if ((v = find_key(body, end, "error"))) {
    struct buf why = { 0 };
    char cv[32];
    config_version(cv, sizeof cv);
    if (get_json_string(&v, end, &why) || put(&why, "", 1)) cni_error(cv, 999, "the cni-wasm daemon refused the call");
    else cni_error(cv, 999, why.p);
    return 1;
  }
  const char *ec = find_key(body, end, "exitCode");
  const char *so = find_key(body, end, "stdout");
  struct buf out = { 0 };
  if (!ec || !so || get_json_string(&so, end, &out)) {
    if (strcmp(command, "ADD") != 0) exec_mode(type, "the daemon's reply did not decode");
    char cv[32];
    config_version(cv, sizeof cv);
    cni_error(cv, 999, "the cni-wasm daemon's reply did not decode");
    return 1;
  }
  int code = atoi(ec);
  note("cni-wasm-shim: served by the daemon at %s\n", cfg_socket);
  size_t off = 0;
  while (off < out.n) {
    ssize_t w = write(1, out.p + off, out.n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  return code;
}
