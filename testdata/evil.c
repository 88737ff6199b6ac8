/*
 * A preloaded library that runs code inside whatever program loads it: the
 * attacker of TestRuntimeMarkCannotBeBorrowed. Its constructor names the thread
 * EV_CASE, then does EV_ACT ("chown:FILE" or "syslog") in the way EV_HOW says,
 * and exits before the program's own code runs:
 *   direct          in the loaded program itself
 *   fork            in a forked child
 *   memfd:PROG      fexecve of a memfd copy of PROG (a static busybox), named EV_CASE
 *   deleted:PROG    exec through /proc/self/fd of a copy of PROG unlinked after open
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void act(const char *what)
{
	if (strncmp(what, "chown:", 6) == 0)
		chown(what + 6, 1234, -1);
	else if (strcmp(what, "syslog") == 0)
		klogctl(10, NULL, 0);
}

/* The busybox applet that does what: chown or dmesg. */
static void argv_for(const char *what, char **argv)
{
	if (strncmp(what, "chown:", 6) == 0) {
		argv[0] = "chown", argv[1] = "1234", argv[2] = (char *)what + 6, argv[3] = NULL;
	} else {
		argv[0] = "dmesg", argv[1] = NULL;
	}
}

static int copy_into(int dst, const char *prog)
{
	struct stat st;
	int src = open(prog, O_RDONLY | O_CLOEXEC);

	if (src < 0 || fstat(src, &st) != 0)
		return -1;
	for (off_t off = 0; off < st.st_size;)
		if (sendfile(dst, src, &off, st.st_size - off) <= 0)
			return -1;
	close(src);
	return 0;
}

__attribute__((constructor)) static void evil(void)
{
	const char *name = getenv("EV_CASE"), *what = getenv("EV_ACT"), *how = getenv("EV_HOW");
	char *argv[4];
	char path[4096];

	if (!name || !what || !how)
		return;
	unsetenv("LD_PRELOAD");
	prctl(PR_SET_NAME, name, 0, 0, 0);
	argv_for(what, argv);
	if (strcmp(how, "direct") == 0) {
		act(what);
	} else if (strcmp(how, "fork") == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			act(what);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	} else if (strncmp(how, "memfd:", 6) == 0) {
		int fd = memfd_create(name, 0);
		if (fd >= 0 && copy_into(fd, how + 6) == 0)
			fexecve(fd, argv, environ);
		perror("memfd exec");
		_exit(1);
	} else if (strncmp(how, "deleted:", 8) == 0) {
		snprintf(path, sizeof(path), "%s/%s", getenv("EV_DIR"), name);
		int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
		if (out < 0 || copy_into(out, how + 8) != 0)
			_exit(1);
		close(out);
		int fd = open(path, O_RDONLY);
		unlink(path);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		execve(path, argv, environ);
		perror("deleted exec");
		_exit(1);
	}
	_exit(0);
}
