/*
 * cni-wasm native addon: the few syscalls Node cannot make synchronously.
 *
 * Guests call the host synchronously, so the kernel layer cannot await a
 * promise. This addon gives it blocking primitives only: setns, open/close of
 * namespace files, NETLINK_ROUTE and NETLINK_NETFILTER sockets with a
 * send-one-request/read-all-replies call and an nfnetlink batch call, and
 * flock, and a netlink request sent from a thread of its own
 * (background.inc.c). All message encoding/decoding stays in TypeScript.
 *
 * Errors are thrown as Error objects with .code = errno name ("EEXIST") and
 * .errno = the positive errno number.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <node_api.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(0xb7, 0x3)
#endif

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

#define RTM_BASE_TYPE 16
#define NL_RCVBUF (1024 * 1024)
#define NL_TIMEOUT_SEC 10

/* Throws Error(message) with .code = errno name and .errno. `detail` (also
 * set as .detail) is the kernel's extended-ack text or the failing call/path.
 * Always returns NULL so callers can `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, int err, const char *detail)
{
  char code[32], msg[512];
  const char *name = strerrorname_np(err);
  if (name) snprintf(code, sizeof code, "%s", name);
  else snprintf(code, sizeof code, "E%d", err);
  if (detail && *detail) snprintf(msg, sizeof msg, "%s (%s)", strerror(err), detail);
  else snprintf(msg, sizeof msg, "%s", strerror(err));

  napi_value jcode, jmsg, jerr, jnum;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, jcode, jmsg, &jerr);
  napi_create_int32(env, err, &jnum);
  napi_set_named_property(env, jerr, "errno", jnum);
  if (detail && *detail) {
    napi_value jdetail;
    napi_create_string_utf8(env, detail, NAPI_AUTO_LENGTH, &jdetail);
    napi_set_named_property(env, jerr, "detail", jdetail);
  }
  napi_throw(env, jerr);
  return NULL;
}

static napi_value type_error(napi_env env, const char *msg)
{
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

/* Fetches exactly n arguments; returns 0 (with a pending exception) if fewer. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv)
{
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    type_error(env, "missing argument");
    return 0;
  }
  return 1;
}

static int get_fd(napi_env env, napi_value v, int *fd)
{
  if (napi_get_value_int32(env, v, fd) != napi_ok || *fd < 0) {
    type_error(env, "fd must be a non-negative integer");
    return 0;
  }
  return 1;
}

static napi_value undefined(napi_env env)
{
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value int_value(napi_env env, int v)
{
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* setns(fd): switches only the calling (main) thread's network namespace. */
static napi_value Setns(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (setns(fd, CLONE_NEWNET) < 0) return throw_errno(env, errno, "setns");
  return undefined(env);
}

/* the errno openNetns reports for "not a network namespace" (.code EINVAL) */
#define ENOTNETNS_ERRNO EINVAL

static napi_value OpenNetns(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  char path[4096];
  size_t len;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok)
    return type_error(env, "path must be a string");
  if (len >= sizeof path - 1) return type_error(env, "path too long");
  /* O_NONBLOCK: a FIFO or a device named as a netns must not hang us. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, errno, path);
  /* A network namespace file, checked on the descriptor we keep: on nsfs
   * (a bind mount of /proc/PID/ns/net or the file itself) and of type net. */
  struct statfs sfs;
  if (fstatfs(fd, &sfs) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, path);
  }
  if ((unsigned long)sfs.f_type != (unsigned long)NSFS_MAGIC) {
    char detail[4200];
    close(fd);
    snprintf(detail, sizeof detail, "%s is not a namespace file: unknown FS magic %lx", path, (unsigned long)sfs.f_type);
    return throw_errno(env, ENOTNETNS_ERRNO, detail);
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    char detail[4200];
    int err = type < 0 ? errno : 0;
    close(fd);
    if (type < 0) snprintf(detail, sizeof detail, "%s: cannot tell the namespace type: %s", path, strerror(err));
    else snprintf(detail, sizeof detail, "%s is a namespace file, but not of a network namespace", path);
    return throw_errno(env, ENOTNETNS_ERRNO, detail);
  }
  return int_value(env, fd);
}

static napi_value Close(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return undefined(env);
}

/* nlOpen(protocol = NETLINK_ROUTE): a netlink socket of that protocol
 * (NETLINK_ROUTE or NETLINK_NETFILTER only), bound in the calling thread's
 * current netns for life. */
static napi_value NlOpen(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  size_t argc = 1;
  napi_valuetype t = napi_undefined;
  int proto = NETLINK_ROUTE;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_undefined && napi_get_value_int32(env, argv[0], &proto) != napi_ok)
    return type_error(env, "protocol must be a number");
  if (proto != NETLINK_ROUTE && proto != NETLINK_NETFILTER)
    return type_error(env, "protocol must be NETLINK_ROUTE (0) or NETLINK_NETFILTER (12)");
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1, rcvbuf = NL_RCVBUF;
  struct timeval tv = { .tv_sec = NL_TIMEOUT_SEC };
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  /* Big dumps (routes, many links) must not overrun the queue; extended acks
   * give the kernel's own error text; capped acks skip echoing the request. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "netlink socket setup");
  }
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return int_value(env, fd);
}

/* Extended-ack message text of an NLMSG_ERROR, or NULL. */
static const char *extack_msg(struct nlmsghdr *h)
{
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return NULL;
  struct nlmsgerr *e = NLMSG_DATA(h);
  size_t off = NLMSG_HDRLEN + sizeof(int) +
               ((h->nlmsg_flags & NLM_F_CAPPED) ? NLMSG_HDRLEN : NLMSG_ALIGN(e->msg.nlmsg_len));
  while (off + NLA_HDRLEN <= h->nlmsg_len) {
    struct nlattr *a = (struct nlattr *)((char *)h + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && a->nla_len > NLA_HDRLEN) {
      char *s = (char *)a + NLA_HDRLEN;
      if (s[a->nla_len - NLA_HDRLEN - 1] == '\0') return s;
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return NULL;
}

/* Reads one whole datagram into *buf, growing it to fit (peek with
 * MSG_TRUNC first, so nothing is cut). Returns its length or -errno;
 * SO_RCVTIMEO expiring is -ETIMEDOUT. */
static ssize_t recv_whole(int fd, char **buf, size_t *cap)
{
  ssize_t n;
  do n = recv(fd, *buf, *cap, MSG_PEEK | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
  if ((size_t)n > *cap) {
    char *bigger = realloc(*buf, (size_t)n);
    if (!bigger) return -ENOMEM;
    *buf = bigger;
    *cap = (size_t)n;
  }
  do n = recv(fd, *buf, *cap, 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

static int send_to_kernel(int fd, const void *msg, size_t len)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t n;
  do n = sendto(fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : 0;
}

/* Throws the error an NLMSG_ERROR carries (err < 0), with its extended-ack text. */
static napi_value throw_nlerr(napi_env env, struct nlmsghdr *h, int err)
{
  char detail[256] = "";
  const char *m = extack_msg(h);
  if (m) snprintf(detail, sizeof detail, "%s", m);
  return throw_errno(env, -err, detail);
}

/*
 * nlRequest(fd, request) -> Buffer[]
 * Sends one complete netlink message (caller sets type, flags and seq) and
 * reads until it is answered: NLMSG_DONE for a dump, the ACK otherwise.
 * Returns every other reply with that seq as a full message (nlmsghdr
 * included). An NLMSG_ERROR with error != 0 throws.
 */
/* The (fd, request) arguments: a socket and one whole netlink message.
 * Returns 0 after throwing a TypeError. */
static int get_request(napi_env env, napi_callback_info info, int *fd, void **req, size_t *reqlen)
{
  napi_value argv[2];
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], fd)) return 0;
  if (napi_get_buffer_info(env, argv[1], req, reqlen) != napi_ok) { type_error(env, "request must be a Buffer"); return 0; }
  if (*reqlen < NLMSG_HDRLEN || ((struct nlmsghdr *)*req)->nlmsg_len != *reqlen) {
    type_error(env, "request must be one netlink message with a correct nlmsg_len");
    return 0;
  }
  return 1;
}

static napi_value NlRequest(napi_env env, napi_callback_info info)
{
  int fd;
  void *req;
  size_t reqlen;
  if (!get_request(env, info, &fd, &req, &reqlen)) return NULL;
  struct nlmsghdr *rh = req;
  uint32_t seq = rh->nlmsg_seq;
  /* Same rule rtnetlink itself uses to decide a request is a dump. */
  int dump = rh->nlmsg_type >= RTM_BASE_TYPE && ((rh->nlmsg_type - RTM_BASE_TYPE) & 3) == 2 &&
             (rh->nlmsg_flags & NLM_F_DUMP);
  if (!dump && !(rh->nlmsg_flags & NLM_F_ACK))
    return type_error(env, "request must set NLM_F_ACK or be a dump (NLM_F_DUMP)");

  int r = send_to_kernel(fd, req, reqlen);
  if (r < 0) return throw_errno(env, -r, "netlink send");

  napi_value out;
  napi_create_array(env, &out);
  uint32_t count = 0;
  size_t cap = 32768;
  char *buf = malloc(cap);
  int done = 0, interrupted = 0;
  if (!buf) return throw_errno(env, ENOMEM, NULL);

  while (!done) {
    ssize_t n = recv_whole(fd, &buf, &cap);
    if (n < 0) { free(buf); return throw_errno(env, (int)-n, "netlink receive"); }

    int left = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue; /* late reply to an abandoned request */
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int))) { free(buf); return throw_errno(env, EPROTO, NULL); }
        int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        if (err == 0) { done = 1; break; }
        throw_nlerr(env, h, err);
        free(buf);
        return NULL;
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        /* A dump that failed part-way reports its error in the DONE payload. */
        int err = h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ? *(int *)NLMSG_DATA(h) : 0;
        if (err < 0) { free(buf); return throw_errno(env, -err, NULL); }
        done = 1;
        break;
      }
      if (h->nlmsg_type == NLMSG_NOOP) continue;
      napi_value b;
      if (napi_create_buffer_copy(env, h->nlmsg_len, h, NULL, &b) != napi_ok) { free(buf); return NULL; }
      napi_set_element(env, out, count++, b);
    }
  }
  free(buf);
  /* The object set changed during the dump: the caller should retry. */
  if (interrupted) return throw_errno(env, EINTR, "netlink dump interrupted, retry");
  return out;
}

/*
 * nlBatch(fd, batch) -> undefined
 * Sends one nfnetlink batch as one datagram: NFNL_MSG_BATCH_BEGIN, the
 * changes, NFNL_MSG_BATCH_END, with consecutive seqs from BEGIN's. The
 * kernel applies the changes all or none. Every change must set NLM_F_ACK;
 * BEGIN and END must not (kernels before 6.10 never answer them). Returns
 * once every change is acknowledged; the first NLMSG_ERROR != 0 for any
 * message of the batch throws.
 *
 * Why the wait ends (nfnetlink_rcv_batch, net/netfilter/nfnetlink.c): a
 * failure of the batch as a whole (EPERM, unknown subsystem, out of memory,
 * a failed commit) is an error for BEGIN's seq, sent before any other reply.
 * Otherwise each message that set NLM_F_ACK or failed gets one NLMSG_ERROR,
 * all sent once the whole batch was processed: the kernel goes on past a
 * failure, so every change is answered, in order. A batch whose framing it
 * cannot parse gets no answer at all: the checks below refuse those, and
 * SO_RCVTIMEO bounds the wait anyway (ETIMEDOUT).
 */
#define NFNL_BATCH_BEGIN NLMSG_MIN_TYPE
#define NFNL_BATCH_END (NLMSG_MIN_TYPE + 1)
#define NFGENMSG_LEN 4 /* struct nfgenmsg */

static napi_value NlBatch(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  int fd;
  void *data;
  size_t len;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) return type_error(env, "batch must be a Buffer");

  char *req = data;
  uint32_t base = 0, count = 0;
  for (size_t off = 0; off < len; count++) {
    struct nlmsghdr *h = (struct nlmsghdr *)(req + off);
    if (len - off < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_LENGTH(NFGENMSG_LEN) || h->nlmsg_len > len - off)
      return type_error(env, "batch: bad nlmsg_len");
    if (count == 0) base = h->nlmsg_seq;
    if (h->nlmsg_seq != base + count) return type_error(env, "batch: seqs must be consecutive");
    if (!(h->nlmsg_flags & NLM_F_REQUEST)) return type_error(env, "batch: NLM_F_REQUEST missing");
    off += NLMSG_ALIGN(h->nlmsg_len);
    int first = count == 0, last = off >= len;
    int type_ok = first ? h->nlmsg_type == NFNL_BATCH_BEGIN
                : last ? h->nlmsg_type == NFNL_BATCH_END
                : h->nlmsg_type != NFNL_BATCH_BEGIN && h->nlmsg_type != NFNL_BATCH_END;
    if (!type_ok) return type_error(env, "batch must be BATCH_BEGIN, changes, BATCH_END");
    if (!!(h->nlmsg_flags & NLM_F_ACK) != !(first || last))
      return type_error(env, "batch: every change, and only they, must set NLM_F_ACK");
  }
  if (count < 3) return type_error(env, "batch holds no change");

  int r = send_to_kernel(fd, req, len);
  if (r < 0) return throw_errno(env, -r, "netlink send");

  uint32_t pending = count - 2;
  size_t cap = 32768;
  char *buf = malloc(cap);
  unsigned char *acked = calloc(count, 1);
  if (!buf || !acked) { free(buf); free(acked); return throw_errno(env, ENOMEM, NULL); }
  while (pending) {
    ssize_t n = recv_whole(fd, &buf, &cap);
    if (n < 0) { free(buf); free(acked); return throw_errno(env, (int)-n, "netlink receive"); }
    int left = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      uint32_t i = h->nlmsg_seq - base; /* wraps: out of range = not ours */
      if (h->nlmsg_type != NLMSG_ERROR || i >= count) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) { free(buf); free(acked); return throw_errno(env, EPROTO, NULL); }
      int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (err) { throw_nlerr(env, h, err); free(buf); free(acked); return NULL; }
      if (i > 0 && i < count - 1 && !acked[i]) { acked[i] = 1; pending--; }
    }
  }
  free(buf);
  free(acked);
  return undefined(env);
}

/* flock(fd, exclusive[, wait = true]): with wait false, EWOULDBLOCK instead of blocking. */
static napi_value Flock(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  size_t argc = 3;
  int fd;
  bool excl, wait = true;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return type_error(env, "flock(fd, exclusive[, wait])");
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &excl) != napi_ok) return type_error(env, "exclusive must be a boolean");
  if (argc > 2 && napi_get_value_bool(env, argv[2], &wait) != napi_ok) return type_error(env, "wait must be a boolean");
  int r;
  do r = flock(fd, (excl ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB));
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "flock");
  return undefined(env);
}

static napi_value Funlock(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (flock(fd, LOCK_UN) < 0) return throw_errno(env, errno, "funlock");
  return undefined(env);
}

#include "store.inc.c"

/* peerCred(fd): {pid, uid, gid} of the process at the other end of a unix
 * socket (SO_PEERCRED), as the kernel recorded it at connect time. */
static napi_value PeerCred(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out, v;
  int fd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, errno, "SO_PEERCRED");
  napi_create_object(env, &out);
  napi_create_int32(env, cred.pid, &v); napi_set_named_property(env, out, "pid", v);
  napi_create_uint32(env, cred.uid, &v); napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, cred.gid, &v); napi_set_named_property(env, out, "gid", v);
  return out;
}

#include "dhcp.inc.c"
#include "background.inc.c"
#include "serve.inc.c"
/* unixConnect(path, timeoutMs): a connected, blocking unix stream socket
 * (close-on-exec) whose reads and writes give up after timeoutMs; for
 * callers that talk to `cni-wasm daemon` synchronously (the runner). */
static napi_value UnixConnect(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  struct sockaddr_un sa;
  int32_t ms;
  if (!get_args(env, info, 2, argv) || !unix_addr(env, argv[0], &sa) ||
      !get_int_min(env, argv[1], 1, &ms, "timeoutMs must be a positive number")) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "unix socket");
  struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
      connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, sa.sun_path);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

NAPI_MODULE_INIT()
{
  napi_property_descriptor props[] = {
    { "setns", NULL, Setns, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openNetns", NULL, OpenNetns, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlOpen", NULL, NlOpen, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlRequest", NULL, NlRequest, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlBatch", NULL, NlBatch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "flock", NULL, Flock, NULL, NULL, NULL, napi_enumerable, NULL },
    { "funlock", NULL, Funlock, NULL, NULL, NULL, napi_enumerable, NULL },
    { "flockWithin", NULL, FlockWithin, NULL, NULL, NULL, napi_enumerable, NULL },
    { "storeRead", NULL, StoreRead, NULL, NULL, NULL, napi_enumerable, NULL },
    { "storeWrite", NULL, StoreWrite, NULL, NULL, NULL, napi_enumerable, NULL },
    { "peerCred", NULL, PeerCred, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpOpen", NULL, UdpOpen, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpSend", NULL, UdpSend, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpRecv", NULL, UdpRecv, NULL, NULL, NULL, napi_enumerable, NULL },
    { "ifHwaddr", NULL, IfHwaddr, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unixExchange", NULL, UnixExchange, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unixConnect", NULL, UnixConnect, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlStart", NULL, NlStart, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlJoin", NULL, NlJoin, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlDone", NULL, NlDone, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlWatchOpen", NULL, NlWatchOpen, NULL, NULL, NULL, napi_enumerable, NULL },
    { "nlWaitGone", NULL, NlWaitGone, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unixListen", NULL, UnixListen, NULL, NULL, NULL, napi_enumerable, NULL },
    { "acceptWatch", NULL, AcceptWatch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "acceptWait", NULL, AcceptWait, NULL, NULL, NULL, napi_enumerable, NULL },
    { "readFrame", NULL, ReadFrame, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
