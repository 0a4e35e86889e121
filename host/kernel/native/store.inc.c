/*
 * The store's file primitives (host/capabilities/store.ts; included by
 * addon.c, which owns the helpers). Each saves what Node's fs costs per call
 * (an Error with a stack per ENOENT, a Buffer per read, one JS->C crossing
 * per syscall) on the IPAM path of every ADD and DEL:
 *
 *   flockWithin(fd, ms)              exclusive flock, waiting at most ms:
 *                                    true once held, false at the deadline
 *   storeRead(dirfd, names, max, needles)
 *                                    the value of each name (see below)
 *   storeWrite(dirfd, tmp, name, value, mode)
 *                                    write-then-rename of one value
 *
 * Nothing here decides policy: names are checked by store.ts, and every read
 * is bounded as there (regular file, no symlink, non-blocking, at most max bytes).
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define STORE_NAME_MAX 1024

static int rename2(int dfd, const char *from, const char *to, unsigned flags)
{
  return (int)syscall(SYS_renameat2, dfd, from, dfd, to, flags);
}

static double mono_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* flockWithin(fd, ms): LOCK_EX|LOCK_NB retried with a short backoff (0.2 ms,
 * doubling up to 1 ms), so a released lock is taken within about a
 * millisecond, and never longer than ms in all: a blocking flock could not
 * be interrupted by the plugin's time limit. */
static napi_value FlockWithin(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  int fd;
  double ms;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_double(env, argv[1], &ms) != napi_ok) return type_error(env, "ms must be a number");
  double end = mono_ms() + (ms > 0 ? ms : 0);
  long sleep_us = 200;
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) { napi_get_boolean(env, true, &out); return out; }
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return throw_errno(env, errno, "flock");
    double left = end - mono_ms();
    if (left <= 0) { napi_get_boolean(env, false, &out); return out; }
    long us = sleep_us < left * 1000 ? sleep_us : (long)(left * 1000) + 1;
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
    if (sleep_us < 1000) sleep_us = sleep_us * 2 > 1000 ? 1000 : sleep_us * 2;
  }
}

static int string_arg(napi_env env, napi_value v, char *buf, size_t cap)
{
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok || len == 0 || len >= cap - 1 || strlen(buf) != len) {
    type_error(env, "expected a non-empty string without NUL, shorter than the limit");
    return 0;
  }
  return 1;
}

/* storeRead(dirfd, names, maxBytes, needles | null): for each name of the
 * directory, its content
 * (a string), or 0 when it does not exist, 1 when it cannot be a value (not a
 * regular file, a symlink, larger than maxBytes, unreadable), 2 when needles
 * are given and the content holds none of them (a cheap pre-filter of
 * store.find, which then compares exactly). */
static napi_value StoreRead(napi_env env, napi_callback_info info)
{
  napi_value argv[4], out, v;
  char name[STORE_NAME_MAX];
  int dfd;
  uint32_t count, nneedles = 0;
  int64_t max;
  napi_valuetype nt;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &dfd)) return NULL;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok) return type_error(env, "names must be an array");
  if (napi_get_value_int64(env, argv[2], &max) != napi_ok || max < 0 || max > (64 << 20)) return type_error(env, "maxBytes out of range");
  napi_typeof(env, argv[3], &nt);
  if (nt != napi_null && napi_get_array_length(env, argv[3], &nneedles) != napi_ok) return type_error(env, "needles must be an array or null");
  if (nneedles > 16) return type_error(env, "at most 16 needles");
  const void *needle[16];
  size_t needle_len[16];
  for (uint32_t i = 0; i < nneedles; i++) {
    void *data;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || napi_get_buffer_info(env, v, &data, &needle_len[i]) != napi_ok)
      return type_error(env, "needles must be Buffers");
    needle[i] = data;
  }
  char *buf = malloc((size_t)max + 1);
  if (!buf) return throw_errno(env, ENOMEM, NULL);
  napi_create_array_with_length(env, count, &out);
  for (uint32_t i = 0; i < count; i++) {
    int code = 1;
    size_t got = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || !string_arg(env, v, name, sizeof name)) { free(buf); return NULL; }
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) code = errno == ENOENT ? 0 : 1;
    else {
      struct stat st;
      if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= max) {
        code = -1;
        while (got < (size_t)st.st_size) {
          ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) { code = 1; break; }
          if (n == 0) break;
          got += (size_t)n;
        }
      }
      close(fd);
    }
    if (code < 0 && nneedles) {
      code = 2;
      for (uint32_t k = 0; k < nneedles && code == 2; k++) if (memmem(buf, got, needle[k], needle_len[k]) || !needle_len[k]) code = -1;
    }
    if (code < 0) napi_create_string_utf8(env, buf, got, &v);
    else napi_create_int32(env, code, &v);
    napi_set_element(env, out, i, v);
  }
  free(buf);
  return out;
}

/* storeWrite(dirfd, tmp, name, value, mode): writes value to the new file
 * tmp (0644 less the umask, not following a link), then puts it in place of
 * name. mode 0 replaces name (as rename(2)); an existing regular file is
 * swapped out (RENAME_EXCHANGE) and then unlinked, which skips the writeback
 * ext4 starts when a rename replaces a file (auto_da_alloc): as atomic for
 * every reader and for a crash of this process; only a power loss right
 * after it may find the new value empty rather than old or new. mode 1 only
 * if name does not exist: false (nothing written) if it does. On any error
 * tmp is gone. */
static napi_value StoreWrite(napi_env env, napi_callback_info info)
{
  napi_value argv[5], out;
  char from[STORE_NAME_MAX], to[STORE_NAME_MAX];
  int dfd;
  int32_t mode;
  size_t len;
  if (!get_args(env, info, 5, argv) || !get_fd(env, argv[0], &dfd) || !string_arg(env, argv[1], from, sizeof from) ||
      !string_arg(env, argv[2], to, sizeof to))
    return NULL;
  if (strchr(from, '/') || strchr(to, '/')) return type_error(env, "names must be single path components");
  if (napi_get_value_int32(env, argv[4], &mode) != napi_ok || mode < 0 || mode > 1) return type_error(env, "mode must be 0 or 1");
  if (napi_get_value_string_utf8(env, argv[3], NULL, 0, &len) != napi_ok) return type_error(env, "value must be a string");
  if (len > (64 << 20)) return type_error(env, "value too large");
  char *data = malloc(len + 1);
  if (!data) return throw_errno(env, ENOMEM, NULL);
  napi_get_value_string_utf8(env, argv[3], data, len + 1, &len);

  int err = 0;
  bool done = true;
  int fd = openat(dfd, from, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) { err = errno; free(data); return throw_errno(env, err, from); }
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { err = n < 0 ? errno : EIO; break; }
    off += (size_t)n;
  }
  free(data);
  if (close(fd) < 0 && !err) err = errno;
  if (!err && mode == 1) {
    if (rename2(dfd, from, to, RENAME_NOREPLACE) == 0) { /* in place */ }
    else if (errno == EEXIST) done = false;
    else if (errno == EINVAL || errno == ENOSYS) {
      /* no renameat2 on this file system: link() refuses an existing name as well */
      if (linkat(dfd, from, dfd, to, 0) < 0) { if (errno == EEXIST) done = false; else err = errno; }
    } else err = errno;
  } else if (!err) {
    struct stat st;
    if (fstatat(dfd, to, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && rename2(dfd, from, to, RENAME_EXCHANGE) == 0) {
      /* from now names the old value, unlinked below; were it a directory
       * something swapped in meanwhile, put it back */
      struct stat old;
      if (fstatat(dfd, from, &old, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(old.st_mode)) {
        rename2(dfd, from, to, RENAME_EXCHANGE);
        err = EISDIR;
      }
    } else if (renameat(dfd, from, dfd, to) < 0) err = errno;
  }
  unlinkat(dfd, from, 0); /* the old value, a refused or failed write; ENOENT once renamed */
  if (err) return throw_errno(env, err, to);
  napi_get_boolean(env, done, &out);
  return out;
}
