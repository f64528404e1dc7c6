/* floodtool: the Linux form of the seed case, in a guest (issue 12).
 *
 *   floodtool fill DIR N       create DIR/sess_00000000 .. N-1 and exit
 *   floodtool create DIR ID    forever: create DIR/sess_ID_SEQ (O_CREAT,
 *                              a short write), keep the last KEEP open, and
 *                              remove the one made RING files ago, so the
 *                              directory stays at N + creators * RING files.
 *                              Named "php-cgi" (the seed case's creator).
 *   floodtool list DIR         forever: read the whole directory with
 *                              getdents64 into a 1 MiB buffer (one call
 *                              walks most of it under the directory's
 *                              i_rwsem, shared). Named "dirlister".
 *
 * Creating and removing take the directory's i_rwsem exclusively, the
 * listers take it shared for a walk of tens of thousands of dentries: the
 * creators pile up behind readers that are on a CPU inside the walk.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEEP 16
#define RING 64
#define LIST_BUF (1 << 20)

static int fill(const char *dir, long n)
{
	char path[4096];
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/sess_%08lx", dir, i);
		int fd = open(path, O_CREAT | O_WRONLY, 0600);
		if (fd < 0) { perror(path); return 1; }
		close(fd);
	}
	return 0;
}

static int create(const char *dir, long id)
{
	char path[4096];
	int open_fds[KEEP];
	for (int i = 0; i < KEEP; i++)
		open_fds[i] = -1;
	prctl(PR_SET_NAME, "php-cgi");
	for (unsigned long seq = 0;; seq++) {
		snprintf(path, sizeof path, "%s/sess_%ld_%lu", dir, id, seq);
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		if (fd < 0) { perror(path); sleep(1); continue; }
		if (write(fd, "a|s:1:\"x\";", 10) < 0)
			perror("write");
		int slot = seq % KEEP;
		if (open_fds[slot] >= 0)
			close(open_fds[slot]);
		open_fds[slot] = fd;
		if (seq >= RING) {
			snprintf(path, sizeof path, "%s/sess_%ld_%lu", dir, id, seq - RING);
			unlink(path);
		}
	}
	return 0;
}

static int list(const char *dir)
{
	char *buf = malloc(LIST_BUF);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (!buf || fd < 0) { perror(dir); return 1; }
	prctl(PR_SET_NAME, "dirlister");
	for (;;) {
		lseek(fd, 0, SEEK_SET);
		while (syscall(SYS_getdents64, fd, buf, LIST_BUF) > 0)
			;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "fill"))
		return fill(argv[2], atol(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "create"))
		return create(argv[2], atol(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "list"))
		return list(argv[2]);
	fprintf(stderr, "usage: floodtool fill DIR N | create DIR ID | list DIR\n");
	return 2;
}
