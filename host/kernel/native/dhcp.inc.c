/*
 * The DHCP daemon's primitives (included by addon.c, which owns the helpers):
 *
 *   udpOpen(ifname)                  a UDP socket on port 68 of one interface
 *                                    of the calling thread's current netns
 *                                    (SO_BINDTODEVICE, SO_BROADCAST), nonblocking
 *   udpSend(fd, buf, ip, port)       one datagram
 *   udpRecv(fd, maxBytes, timeoutMs) the next datagram (at most maxBytes kept)
 *                                    as {data, source}, or null after timeoutMs
 *   ifHwaddr(fd, ifname)             the interface's 6-byte hardware address
 *   unixExchange(path, banner, req, timeoutMs, maxBytes)
 *                                    one request to a unix stream socket whose
 *                                    server runs as root and greets with
 *                                    `banner`: the reply, read to EOF
 *
 * Every wait is bounded by its timeout and every read by its size limit.
 */
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/un.h>
#include <time.h>

#define DHCP_CLIENT_PORT 68
#define UDP_MAX_BYTES 65536
#define UNIX_MAX_BYTES (1 << 20)
#define WAIT_MAX_MS 600000

static int get_string(napi_env env, napi_value v, char *buf, size_t cap)
{
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok || n >= cap - 1) {
    type_error(env, "string argument missing or too long");
    return 0;
  }
  return 1;
}

static int get_ms(napi_env env, napi_value v, int *ms)
{
  if (napi_get_value_int32(env, v, ms) != napi_ok || *ms < 0 || *ms > WAIT_MAX_MS) {
    type_error(env, "timeout must be 0..600000 ms");
    return 0;
  }
  return 1;
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on fd until the monotonic deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
  for (;;) {
    long long left = deadline - now_ms();
    if (left < 0) left = 0;
    struct pollfd p = { .fd = fd, .events = events };
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r > 0 ? 1 : 0;
  }
}

static napi_value UdpOpen(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  char ifname[IFNAMSIZ + 1];
  if (!get_args(env, info, 1, argv) || !get_string(env, argv[0], ifname, sizeof ifname)) return NULL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_INET, SOCK_DGRAM)");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "setsockopt");
  }
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, strlen(ifname)) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, ifname);
  }
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(DHCP_CLIENT_PORT), .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "bind 0.0.0.0:68");
  }
  return int_value(env, fd);
}

static napi_value UdpSend(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  int fd, port;
  char ip[64];
  void *data;
  size_t len;
  bool isbuf;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf) return type_error(env, "data must be a Buffer");
  napi_get_buffer_info(env, argv[1], &data, &len);
  if (len > UDP_MAX_BYTES) return type_error(env, "datagram too large");
  if (!get_string(env, argv[2], ip, sizeof ip)) return NULL;
  if (napi_get_value_int32(env, argv[3], &port) != napi_ok || port < 1 || port > 65535) return type_error(env, "bad port");
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) return type_error(env, "bad IPv4 address");
  for (;;) {
    ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_fd(fd, POLLOUT, now_ms() + 1000) == 1) continue;
    }
    return throw_errno(env, errno, "sendto");
  }
  return undefined(env);
}

static napi_value UdpRecv(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  int fd, max, ms;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_int32(env, argv[1], &max) != napi_ok || max < 1 || max > UDP_MAX_BYTES) return type_error(env, "maxBytes must be 1..65536");
  if (!get_ms(env, argv[2], &ms)) return NULL;
  long long deadline = now_ms() + ms;
  char *buf = malloc((size_t)max);
  if (!buf) return throw_errno(env, ENOMEM, "udpRecv");
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, (size_t)max, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n >= 0) {
      napi_value out, data, src;
      char ip[INET_ADDRSTRLEN] = "";
      inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
      napi_create_buffer_copy(env, (size_t)n, buf, NULL, &data);
      free(buf);
      napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &src);
      napi_create_object(env, &out);
      napi_set_named_property(env, out, "data", data);
      napi_set_named_property(env, out, "source", src);
      return out;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { int e = errno; free(buf); return throw_errno(env, e, "recvfrom"); }
    int w = wait_fd(fd, POLLIN, deadline);
    if (w < 0) { int e = errno; free(buf); return throw_errno(env, e, "poll"); }
    if (w == 0) { free(buf); napi_value nul; napi_get_null(env, &nul); return nul; }
  }
}

static napi_value IfHwaddr(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  int fd;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd) || !get_string(env, argv[1], ifr.ifr_name, IFNAMSIZ)) return NULL;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) return throw_errno(env, errno, ifr.ifr_name);
  napi_create_buffer_copy(env, 6, ifr.ifr_hwaddr.sa_data, NULL, &out);
  return out;
}

static napi_value UnixExchange(napi_env env, napi_callback_info info)
{
  napi_value argv[5], out;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], banner[128];
  void *req;
  size_t reqlen;
  bool isbuf;
  int ms, max;
  if (!get_args(env, info, 5, argv) || !get_string(env, argv[0], path, sizeof path) || !get_string(env, argv[1], banner, sizeof banner)) return NULL;
  if (napi_is_buffer(env, argv[2], &isbuf) != napi_ok || !isbuf) return type_error(env, "request must be a Buffer");
  napi_get_buffer_info(env, argv[2], &req, &reqlen);
  if (!get_ms(env, argv[3], &ms)) return NULL;
  if (napi_get_value_int32(env, argv[4], &max) != napi_ok || max < 1 || max > UNIX_MAX_BYTES) return type_error(env, "maxBytes must be 1..1MiB");
  long long deadline = now_ms() + ms;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "socket(AF_UNIX)");
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  memcpy(sa.sun_path, path, strlen(path));
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) { int e = errno; close(fd); return throw_errno(env, e, path); }
    if (wait_fd(fd, POLLOUT, deadline) != 1) { close(fd); return throw_errno(env, ETIMEDOUT, path); }
    int soerr = 0; socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) { close(fd); return throw_errno(env, soerr, path); }
  }
  /* the server must be root: nothing goes to a socket someone else listens on */
  struct ucred cred; socklen_t cl = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
    close(fd); return throw_errno(env, EPERM, "the process listening on the socket is not root");
  }
  /* the greeting, one line, before anything is sent */
  size_t bl = strlen(banner), got = 0;
  char greet[128];
  while (got < bl) {
    ssize_t n = recv(fd, greet + got, bl - got, 0);
    if (n > 0) { got += (size_t)n; continue; }
    if (n == 0) { close(fd); return throw_errno(env, EPROTO, "the socket closed without the daemon's greeting"); }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { int e = errno; close(fd); return throw_errno(env, e, path); }
    if (wait_fd(fd, POLLIN, deadline) != 1) { close(fd); return throw_errno(env, ETIMEDOUT, "no greeting from the daemon"); }
  }
  if (memcmp(greet, banner, bl) != 0) { close(fd); return throw_errno(env, EPROTO, "the socket's greeting is not the daemon's"); }
  /* the request, then end of request */
  size_t sent = 0;
  while (sent < reqlen) {
    ssize_t n = send(fd, (char *)req + sent, reqlen - sent, MSG_NOSIGNAL);
    if (n >= 0) { sent += (size_t)n; continue; }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { int e = errno; close(fd); return throw_errno(env, e, "send"); }
    if (wait_fd(fd, POLLOUT, deadline) != 1) { close(fd); return throw_errno(env, ETIMEDOUT, "the daemon took no request"); }
  }
  shutdown(fd, SHUT_WR);
  /* the reply, to EOF, bounded */
  char *buf = malloc((size_t)max + 1);
  if (!buf) { close(fd); return throw_errno(env, ENOMEM, "reply"); }
  size_t have = 0;
  for (;;) {
    ssize_t n = recv(fd, buf + have, (size_t)max + 1 - have, 0);
    if (n > 0) {
      have += (size_t)n;
      if (have > (size_t)max) { free(buf); close(fd); return throw_errno(env, E2BIG, "the daemon's reply is too large"); }
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { int e = errno; free(buf); close(fd); return throw_errno(env, e, "recv"); }
    if (wait_fd(fd, POLLIN, deadline) != 1) { free(buf); close(fd); return throw_errno(env, ETIMEDOUT, "no reply from the daemon in time"); }
  }
  close(fd);
  napi_create_buffer_copy(env, have, buf, NULL, &out);
  free(buf);
  return out;
}
