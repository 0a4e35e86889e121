/*
 * The daemon's listening socket, served by its worker threads directly
 * (host/daemon/worker.ts): every idle worker waits in acceptWait() on the same
 * listening socket and takes one connection at a time, so the kernel's
 * backlog is the queue, a busy worker never takes a second call, and no call
 * passes through the main thread.
 */

/* (now_ms: dhcp.inc.c) */

/* A unix socket address from a JS string; 0 (with a TypeError thrown) if it is not one. */
static int unix_addr(napi_env env, napi_value v, struct sockaddr_un *sa)
{
  size_t len;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, sa->sun_path, sizeof sa->sun_path, &len) != napi_ok) { type_error(env, "path must be a string"); return 0; }
  if (len >= sizeof sa->sun_path - 1) { type_error(env, "socket path too long"); return 0; }
  return 1;
}

/* An int32 argument >= min; 0 (with a TypeError naming it) otherwise. */
static int get_int_min(napi_env env, napi_value v, int32_t min, int32_t *out, const char *msg)
{
  if (napi_get_value_int32(env, v, out) != napi_ok || *out < min) { type_error(env, msg); return 0; }
  return 1;
}

/* unixListen(path, backlog): a listening unix stream socket (close-on-exec,
 * non-blocking) bound at path, which must not exist; mode 0600 from the
 * start (bound under umask 0177, the caller runs before any worker). */
static napi_value UnixListen(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  struct sockaddr_un sa;
  int32_t backlog;
  if (!get_args(env, info, 2, argv) || !unix_addr(env, argv[0], &sa) ||
      !get_int_min(env, argv[1], 1, &backlog, "backlog must be a positive number")) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "unix socket");
  mode_t old = umask(0177);
  int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  int err = errno;
  umask(old);
  if (r < 0 || listen(fd, backlog) < 0) {
    if (r == 0) err = errno;
    close(fd);
    return throw_errno(env, err, sa.sun_path);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* acceptWatch(listenFd): an epoll fd (close-on-exec) for one worker's
 * acceptWait. EPOLLEXCLUSIVE: a new connection wakes one of the idle
 * workers, not all of them. The listening socket is made non-blocking, so a
 * connection another worker took first never blocks this one in accept
 * (systemd's socket may come blocking). */
static napi_value AcceptWatch(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  int lfd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &lfd)) return NULL;
  int fl = fcntl(lfd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0)) return throw_errno(env, errno, "listening socket");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return throw_errno(env, errno, "epoll_create1");
  struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
    int e = errno;
    close(ep);
    return throw_errno(env, e, "epoll_ctl");
  }
  napi_create_int32(env, ep, &out);
  return out;
}

/* acceptWait(watchFd, listenFd, waitMs, ioTimeoutMs): one connection, or -1
 * when none came within waitMs (or another worker took it; waitMs 0: only
 * what is queued now, without waiting). The connection is
 * blocking, close-on-exec, and its writes give up after ioTimeoutMs. */
static napi_value AcceptWait(napi_env env, napi_callback_info info)
{
  napi_value argv[4], out;
  int ep, lfd;
  int32_t wait_ms, io_ms;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &ep) || !get_fd(env, argv[1], &lfd) ||
      !get_int_min(env, argv[2], 0, &wait_ms, "waitMs must be a number >= 0") ||
      !get_int_min(env, argv[3], 1, &io_ms, "ioTimeoutMs must be a positive number")) return NULL;
  struct epoll_event ev;
  /* no wait: straight to accept (what is queued, whichever worker was woken for it) */
  int n = wait_ms == 0 ? 1 : epoll_wait(ep, &ev, 1, wait_ms);
  int fd = -1;
  if (n > 0) {
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) return throw_errno(env, errno, "accept");
  } else if (n < 0 && errno != EINTR) {
    return throw_errno(env, errno, "epoll_wait");
  }
  if (fd >= 0) {
    struct timeval tv = { .tv_sec = io_ms / 1000, .tv_usec = (io_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* to the back of the line: the kernel wakes the first idle exclusive
     * waiter in the order they registered, so without this one worker would
     * take every sequential call and the others would stay cold for a burst */
    struct epoll_event again = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd };
    if (epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL) == 0) epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &again);
  }
  napi_create_int32(env, fd, &out);
  return out;
}

/* readFrame(fd, maxBytes, timeoutMs): one frame (4-byte big-endian length,
 * then that many bytes), all of it within timeoutMs. Throws E2BIG past
 * maxBytes (before reading the body), ETIMEDOUT, or ECONNRESET when the
 * peer closes early. */
static napi_value ReadFrame(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  int fd;
  int32_t max, ms;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_int_min(env, argv[1], 1, &max, "maxBytes must be a positive number") ||
      !get_int_min(env, argv[2], 1, &ms, "timeoutMs must be a positive number")) return NULL;
  long long deadline = now_ms() + ms;
  unsigned char head[4];
  char *body = NULL;
  size_t need = 4, have = 0;
  int in_body = 0;
  for (;;) {
    if (have == need) {
      if (in_body) break;
      uint32_t l = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
      if (l > (uint32_t)max) return throw_errno(env, E2BIG, "frame");
      body = malloc(l ? l : 1);
      if (!body) return throw_errno(env, ENOMEM, "frame");
      in_body = 1;
      need = l;
      have = 0;
      continue;
    }
    long long left = deadline - now_ms();
    if (left <= 0) { free(body); return throw_errno(env, ETIMEDOUT, "frame"); }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, (int)left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { int e = errno; free(body); return throw_errno(env, e, "poll"); }
    if (n == 0) continue;
    ssize_t r = recv(fd, in_body ? body + have : (char *)head + have, need - have, MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (r < 0) { int e = errno; free(body); return throw_errno(env, e, "recv"); }
    if (r == 0) { free(body); return throw_errno(env, ECONNRESET, "frame"); }
    have += (size_t)r;
  }
  napi_status st = napi_create_buffer_copy(env, need, body, NULL, &out);
  free(body);
  return st == napi_ok ? out : NULL;
}
