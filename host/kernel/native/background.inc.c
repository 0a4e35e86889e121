/*
 * Background netlink requests (included by addon.c).
 *
 * Deleting a link returns from the kernel only after RCU grace periods have
 * passed (netdev_run_todo: rcu_barrier and the wait for the last references,
 * ~15-25 ms here), long after the link is gone from every table. The request
 * is processed in the sending thread's own context, so the only way to do
 * other work meanwhile is to send it from another thread:
 *
 *   nlStart(fd, request) -> handle   a thread sends the one acked request on
 *                                    fd (a socket used for nothing else) and
 *                                    waits for its answer
 *   nlJoin(handle)                   waits for that thread; throws what the
 *                                    kernel answered, as nlRequest would
 *
 * The handle owns the thread; one that is never joined is joined when it is
 * collected. At most BG_MAX threads exist at once in the process.
 *
 * For a link deletion the outcome is known long before the answer: the
 * kernel announces RTM_DELLINK to the RTNLGRP_LINK group while it
 * unregisters the link, under the rtnl lock, before its wait for RCU grace
 * periods, and it refuses a deletion (ENODEV, EOPNOTSUPP, ...) before it
 * unregisters anything. So
 *
 *   nlWatchOpen() -> fd              a socket of the thread's netns that
 *                                    hears link announcements; open it
 *                                    before nlStart, so none is missed
 *   nlWaitGone(fd, handle, name, ms) -> 1 gone, 2 answered, 0 time out:
 *                                    returns when `name` was announced
 *                                    deleted (the link is out of every
 *                                    table: its name is free, its peer
 *                                    gone) or when the kernel answered
 *                                    (then nlJoin says how)
 *   nlDone(handle) -> bool           whether the kernel has answered
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <linux/rtnetlink.h>

#define BG_MAX 64

typedef struct {
  pthread_t thread;
  int started, joined;
  int fd;
  char *msg;
  size_t len;
  uint32_t seq;
  int err;          /* 0, or a positive errno */
  char detail[256]; /* the kernel's extended-ack text, or the failing step */
  int efd;          /* written once the kernel has answered */
  atomic_int done;
} bg_request;

static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER;
static int bg_running = 0;

static void *bg_run(void *p)
{
  bg_request *r = p;
  int e = send_to_kernel(r->fd, r->msg, r->len);
  if (e < 0) { r->err = -e; snprintf(r->detail, sizeof r->detail, "netlink send"); return NULL; }
  size_t cap = 8192;
  char *buf = malloc(cap);
  if (!buf) { r->err = ENOMEM; return NULL; }
  for (;;) {
    ssize_t n = recv_whole(r->fd, &buf, &cap);
    if (n < 0) { r->err = (int)-n; snprintf(r->detail, sizeof r->detail, "netlink receive"); break; }
    int left = (int)n, done = 0;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != r->seq || h->nlmsg_type != NLMSG_ERROR) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int))) { r->err = EPROTO; done = 1; break; }
      int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (err < 0) {
        r->err = -err;
        const char *m = extack_msg(h);
        if (m) snprintf(r->detail, sizeof r->detail, "%s", m);
      }
      done = 1;
      break;
    }
    if (done) break;
  }
  free(buf);
  atomic_store(&r->done, 1);
  uint64_t one = 1;
  if (write(r->efd, &one, sizeof one) < 0) { /* the poller falls back to its time-out */ }
  return NULL;
}

static void bg_wait(bg_request *r)
{
  if (!r->started || r->joined) return;
  pthread_join(r->thread, NULL);
  r->joined = 1;
  /* the thread has written it for the last time: no need to wait for the collector */
  if (r->efd >= 0) { close(r->efd); r->efd = -1; }
  pthread_mutex_lock(&bg_lock);
  bg_running--;
  pthread_mutex_unlock(&bg_lock);
}

static void bg_finalize(napi_env env, void *data, void *hint)
{
  bg_request *r = data;
  bg_wait(r);
  if (r->efd >= 0) close(r->efd);
  free(r->msg);
  free(r);
}

static napi_value NlStart(napi_env env, napi_callback_info info)
{
  int fd;
  void *req;
  size_t reqlen;
  if (!get_request(env, info, &fd, &req, &reqlen)) return NULL;
  if (reqlen > 65536) return type_error(env, "a background request is at most 64 KiB");
  if (!(((struct nlmsghdr *)req)->nlmsg_flags & NLM_F_ACK))
    return type_error(env, "a background request must set NLM_F_ACK");
  bg_request *r = calloc(1, sizeof *r);
  if (!r || !(r->msg = malloc(reqlen))) { free(r); return throw_errno(env, ENOMEM, NULL); }
  r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->efd < 0) { int e = errno; free(r->msg); free(r); return throw_errno(env, e, "eventfd"); }
  memcpy(r->msg, req, reqlen);
  r->len = reqlen;
  r->fd = fd;
  r->seq = ((struct nlmsghdr *)req)->nlmsg_seq;
  pthread_mutex_lock(&bg_lock);
  int room = bg_running < BG_MAX;
  if (room) bg_running++;
  pthread_mutex_unlock(&bg_lock);
  if (!room) { close(r->efd); free(r->msg); free(r); return throw_errno(env, EAGAIN, "too many background netlink requests"); }
  int e = pthread_create(&r->thread, NULL, bg_run, r);
  if (e != 0) {
    pthread_mutex_lock(&bg_lock);
    bg_running--;
    pthread_mutex_unlock(&bg_lock);
    close(r->efd);
    free(r->msg);
    free(r);
    return throw_errno(env, e, "pthread_create");
  }
  r->started = 1;
  napi_value out;
  if (napi_create_external(env, r, bg_finalize, NULL, &out) != napi_ok) {
    bg_finalize(env, r, NULL);
    return NULL;
  }
  return out;
}

static napi_value NlJoin(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  void *data;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || !data)
    return type_error(env, "not a background request handle");
  bg_request *r = data;
  bg_wait(r);
  if (r->err) return throw_errno(env, r->err, r->detail[0] ? r->detail : NULL);
  return undefined(env);
}

static bg_request *get_handle(napi_env env, napi_value v)
{
  void *data;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) { type_error(env, "not a background request handle"); return NULL; }
  return data;
}

static napi_value NlDone(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  bg_request *r = get_handle(env, argv[0]);
  if (!r) return NULL;
  napi_get_boolean(env, atomic_load(&r->done) != 0, &out);
  return out;
}

static napi_value NlWatchOpen(napi_env env, napi_callback_info info)
{
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int rcvbuf = NL_RCVBUF;
  struct sockaddr_nl local = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "netlink watch socket setup");
  }
  return int_value(env, fd);
}

/* 1 when an RTM_DELLINK of an AF_UNSPEC link called `name` is among the
 * messages in buf (bridge-port and other families' announcements do not count). */
static int announces_gone(const char *buf, int len, const char *name)
{
  for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type != RTM_DELLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    if (ifi->ifi_family != AF_UNSPEC) continue;
    int alen = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *ifi);
    for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type != IFLA_IFNAME) continue;
      size_t n = RTA_PAYLOAD(a);
      const char *v = RTA_DATA(a);
      if (n > 0 && strnlen(v, n) == strlen(name) && strncmp(v, name, n) == 0) return 1;
    }
  }
  return 0;
}

static napi_value NlWaitGone(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  int fd, timeout;
  char name[64];
  size_t nlen;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  bg_request *r = get_handle(env, argv[1]);
  if (!r) return NULL;
  if (napi_get_value_string_utf8(env, argv[2], name, sizeof name, &nlen) != napi_ok || nlen == 0 || nlen >= sizeof name - 1)
    return type_error(env, "name must be a link name");
  if (napi_get_value_int32(env, argv[3], &timeout) != napi_ok || timeout < 0) return type_error(env, "timeout must be ms >= 0");
  struct timeval t0, now;
  gettimeofday(&t0, NULL);
  char buf[16384];
  int result = 0;
  for (;;) {
    if (atomic_load(&r->done)) { result = 2; break; }
    gettimeofday(&now, NULL);
    long left = timeout - ((now.tv_sec - t0.tv_sec) * 1000L + (now.tv_usec - t0.tv_usec) / 1000L);
    if (left <= 0) break;
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = r->efd, .events = POLLIN } };
    int n = poll(p, 2, (int)left);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (p[0].revents & POLLIN) {
      ssize_t got;
      while ((got = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        if (announces_gone(buf, (int)got, name)) { result = 1; break; }
      }
      /* ENOBUFS: announcements were lost; the kernel's answer still comes */
      if (result) break;
    }
  }
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}
