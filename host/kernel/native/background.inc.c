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
 */
#include <pthread.h>

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
  return NULL;
}

static void bg_wait(bg_request *r)
{
  if (!r->started || r->joined) return;
  pthread_join(r->thread, NULL);
  r->joined = 1;
  pthread_mutex_lock(&bg_lock);
  bg_running--;
  pthread_mutex_unlock(&bg_lock);
}

static void bg_finalize(napi_env env, void *data, void *hint)
{
  bg_request *r = data;
  bg_wait(r);
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
  memcpy(r->msg, req, reqlen);
  r->len = reqlen;
  r->fd = fd;
  r->seq = ((struct nlmsghdr *)req)->nlmsg_seq;
  pthread_mutex_lock(&bg_lock);
  int room = bg_running < BG_MAX;
  if (room) bg_running++;
  pthread_mutex_unlock(&bg_lock);
  if (!room) { free(r->msg); free(r); return throw_errno(env, EAGAIN, "too many background netlink requests"); }
  int e = pthread_create(&r->thread, NULL, bg_run, r);
  if (e != 0) {
    pthread_mutex_lock(&bg_lock);
    bg_running--;
    pthread_mutex_unlock(&bg_lock);
    free(r->msg);
    free(r);
    return throw_errno(env, e, "pthread_create");
  }
  r->started = 1;
  napi_value out;
  if (napi_create_external(env, r, bg_finalize, NULL, &out) != napi_ok) {
    bg_wait(r);
    free(r->msg);
    free(r);
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
