/*
 * nullfuse - the cheapest FUSE server: a file whose ioctls are answered at
 * once with result 0 and no data. The baseline for scripts/bench latency.
 *
 *   nullfuse PATH single|percpu
 *
 * Mounts FUSE on the regular file PATH (as root, raw /dev/fuse, no
 * libfuse), like the kevent daemon's FUSE-file transport. single: one
 * reader thread on /dev/fuse. percpu: one FUSE_DEV_IOC_CLONE clone per CPU,
 * each read by a thread pinned to that CPU, replies through the clone that
 * read the request (the daemon's modes, minus its spin). Prints "ready"
 * once mounted; runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

struct reader {
	int fd;
	int cpu;
};

static void reply(int fd, __u64 unique, int error, const void *body, size_t len)
{
	char buf[512];
	struct fuse_out_header oh = { .len = sizeof(oh) + len, .error = error, .unique = unique };

	memcpy(buf, &oh, sizeof(oh));
	if (len)
		memcpy(buf + sizeof(oh), body, len);
	if (write(fd, buf, oh.len) < 0 && errno != ENOENT)
		perror("nullfuse: write");
}

static void serve_one(int fd, char *buf, ssize_t n)
{
	struct fuse_in_header *ih = (void *)buf;
	void *in = buf + sizeof(*ih);

	if (n < (ssize_t)sizeof(*ih))
		return;
	switch (ih->opcode) {
	case FUSE_INIT: {
		struct fuse_init_in *ii = in;
		struct fuse_init_out io;

		memset(&io, 0, sizeof(io));
		io.major = FUSE_KERNEL_VERSION;
		io.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor : FUSE_KERNEL_MINOR_VERSION;
		io.max_write = 4096;
		reply(fd, ih->unique, 0, &io, sizeof(io));
		printf("ready\n");
		fflush(stdout);
		break;
	}
	case FUSE_GETATTR: {
		struct fuse_attr_out ao;

		memset(&ao, 0, sizeof(ao));
		ao.attr_valid = 3600;
		ao.attr.ino = 1;
		ao.attr.mode = S_IFREG | 0666;
		ao.attr.nlink = 1;
		reply(fd, ih->unique, 0, &ao, sizeof(ao));
		break;
	}
	case FUSE_OPEN: {
		struct fuse_open_out oo;

		memset(&oo, 0, sizeof(oo));
		oo.fh = 1;
		oo.open_flags = FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE;
		reply(fd, ih->unique, 0, &oo, sizeof(oo));
		break;
	}
	case FUSE_IOCTL: {
		struct fuse_ioctl_out io;

		memset(&io, 0, sizeof(io));
		reply(fd, ih->unique, 0, &io, sizeof(io));
		break;
	}
	case FUSE_INTERRUPT:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		break;
	case FUSE_RELEASE:
	case FUSE_FLUSH:
		reply(fd, ih->unique, 0, NULL, 0);
		break;
	default:
		reply(fd, ih->unique, -ENOSYS, NULL, 0);
		break;
	}
}

static void *run(void *arg)
{
	struct reader *r = arg;
	static __thread char buf[FUSE_MIN_READ_BUFFER + 8192];

	if (r->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(r->cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	for (;;) {
		ssize_t n = read(r->fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
				continue;
			exit(0);
		}
		serve_one(r->fd, buf, n);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char opts[256];
	int fd, percpu;
	static struct reader rd[CPU_SETSIZE];
	cpu_set_t set;
	pthread_t th;
	int cpu, nr = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: nullfuse PATH single|percpu\n");
		return 2;
	}
	percpu = strcmp(argv[2], "percpu") == 0;
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("/dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=100666,user_id=0,group_id=0,allow_other", fd);
	if (mount("nullfuse", argv[1], "fuse.nullfuse", MS_NOSUID | MS_NODEV, opts) != 0) {
		perror("mount");
		return 1;
	}
	if (!percpu) {
		rd[0].fd = fd;
		rd[0].cpu = -1;
		run(&rd[0]);
		return 0;
	}
	/* INIT first on the original fd, then the clones. */
	{
		static char buf[FUSE_MIN_READ_BUFFER + 8192];
		ssize_t n = read(fd, buf, sizeof(buf));

		serve_one(fd, buf, n);
	}
	sched_getaffinity(0, sizeof(set), &set);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		__u32 src = (__u32)fd;
		int c;

		if (!CPU_ISSET(cpu, &set))
			continue;
		c = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		if (c < 0 || ioctl(c, FUSE_DEV_IOC_CLONE, &src) != 0) {
			perror("FUSE_DEV_IOC_CLONE");
			return 1;
		}
		rd[nr].fd = c;
		rd[nr].cpu = cpu;
		pthread_create(&th, NULL, run, &rd[nr]);
		nr++;
	}
	pause();
	return 0;
}
