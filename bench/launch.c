/*
 * The 50-concurrent-ADD burst's launcher (bench/resident.ts): starts N
 * copies of a CNI plugin at once, as a runtime's Go code would (posix_spawn:
 * a vfork-style clone, no copy of the caller's page tables), and waits for
 * them all. The bench used to fork them from its own Node process, which
 * cost ~1.5 ms of CPU per child for copying a 60+ MB process's page tables,
 * the same in every mode, and started the last child ~75 ms after the first.
 *
 *   launch PROGRAM N NETNS_PREFIX CID_PREFIX STDIN_FILE OUT_DIR
 *
 * Child i gets the launcher's environment plus CNI_CONTAINERID=<CID_PREFIX>i
 * and CNI_NETNS=<NETNS_PREFIX>i, STDIN_FILE as stdin, OUT_DIR/<i> as stdout,
 * no stderr. Prints the wall time from the first spawn to the last exit
 * (ms) and each child's exit code (-1: killed or not started), one line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
  if (argc != 7) { fprintf(stderr, "usage: launch PROGRAM N NETNS_PREFIX CID_PREFIX STDIN_FILE OUT_DIR\n"); return 2; }
  int n = atoi(argv[2]);
  if (n <= 0 || n > 10000) { fprintf(stderr, "launch: N must be 1..10000\n"); return 2; }
  size_t envc = 0;
  while (environ[envc]) envc++;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int *codes = calloc((size_t)n, sizeof *codes);
  char ***envs = calloc((size_t)n, sizeof *envs);
  posix_spawn_file_actions_t *acts = calloc((size_t)n, sizeof *acts);
  if (!pids || !codes || !envs || !acts) { perror("launch"); return 2; }
  /* everything a child needs is made before the clock starts */
  for (int i = 0; i < n; i++) {
    char **e = calloc(envc + 3, sizeof *e);
    if (!e) { perror("launch"); return 2; }
    size_t k = 0;
    for (size_t j = 0; j < envc; j++)
      if (strncmp(environ[j], "CNI_CONTAINERID=", 16) && strncmp(environ[j], "CNI_NETNS=", 10)) e[k++] = environ[j];
    if (asprintf(&e[k++], "CNI_CONTAINERID=%s%d", argv[4], i) < 0 || asprintf(&e[k++], "CNI_NETNS=%s%d", argv[3], i) < 0) { perror("launch"); return 2; }
    envs[i] = e;
    char *out;
    if (asprintf(&out, "%s/%d", argv[6], i) < 0) { perror("launch"); return 2; }
    posix_spawn_file_actions_init(&acts[i]);
    posix_spawn_file_actions_addopen(&acts[i], 0, argv[5], O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&acts[i], 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&acts[i], 2, "/dev/null", O_WRONLY, 0);
    codes[i] = -1;
  }
  char *child_argv[] = { argv[1], NULL };
  double t0 = now_ms();
  for (int i = 0; i < n; i++)
    if (posix_spawn(&pids[i], argv[1], &acts[i], NULL, child_argv, envs[i]) != 0) pids[i] = 0;
  for (int left = n; left > 0;) {
    int st;
    pid_t p = wait(&st);
    if (p < 0) { if (errno == EINTR) continue; break; }
    for (int i = 0; i < n; i++)
      if (pids[i] == p) { codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -1; left--; break; }
  }
  printf("%.3f", now_ms() - t0);
  for (int i = 0; i < n; i++) printf(" %d", codes[i]);
  printf("\n");
  return 0;
}
