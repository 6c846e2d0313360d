/*
 * wedge_fuse MOUNTPOINT - a FUSE filesystem that never answers POLL or
 * FLUSH (tests/host/wedge.sh, issue 8 item 2). Root mounts it with
 * allow_other; its one file "f" (mode 0666) can be opened by anyone.
 * Everything else is answered at once. Prints "ready" once INIT is done;
 * exits on SIGTERM (closing /dev/fuse aborts the connection and releases
 * whoever waited on it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fuse.h>

static int dev;

static void reply(uint64_t unique, int err, const void *body, size_t len)
{
	struct fuse_out_header h = { .len = (uint32_t)(sizeof(h) + len), .error = -err, .unique = unique };
	struct iovec v[2] = { { &h, sizeof(h) }, { (void *)body, len } };

	if (writev(dev, v, body ? 2 : 1) < 0 && errno != ENOENT)
		perror("wedge_fuse: writev");
}

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = ino == 1 ? (S_IFDIR | 0755) : (S_IFREG | 0666);
	a->nlink = ino == 1 ? 2 : 1;
	a->blksize = 4096;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	char opts[256];

	if (argc != 2) {
		fprintf(stderr, "usage: wedge_fuse MOUNTPOINT\n");
		return 2;
	}
	dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		perror("wedge_fuse: /dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", dev);
	if (mount("wedge", argv[1], "fuse.wedge", MS_NOSUID | MS_NODEV, opts) != 0) {
		perror("wedge_fuse: mount");
		return 1;
	}
	for (;;) {
		ssize_t n = read(dev, buf, sizeof(buf));
		struct fuse_in_header *in = (void *)buf;
		void *arg = buf + sizeof(*in);

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
				continue;
			return 0;	/* unmounted (ENODEV) */
		}
		switch (in->opcode) {
		case FUSE_INIT: {
			struct fuse_init_in *ii = arg;
			struct fuse_init_out o;

			memset(&o, 0, sizeof(o));
			o.major = FUSE_KERNEL_VERSION;
			o.minor = ii->minor < 31 ? ii->minor : 31;
			o.max_readahead = ii->max_readahead;
			o.max_background = 16;
			o.congestion_threshold = 12;
			o.max_write = 4096;
			o.time_gran = 1;
			reply(in->unique, 0, &o, sizeof(o));
			printf("ready\n");
			fflush(stdout);
			break;
		}
		case FUSE_LOOKUP:
			if (in->nodeid == 1 && strcmp(arg, "f") == 0) {
				struct fuse_entry_out e;

				memset(&e, 0, sizeof(e));
				e.nodeid = 2;
				e.entry_valid = 3600;
				e.attr_valid = 3600;
				fill_attr(&e.attr, 2);
				reply(in->unique, 0, &e, sizeof(e));
			} else {
				reply(in->unique, ENOENT, NULL, 0);
			}
			break;
		case FUSE_GETATTR: {
			struct fuse_attr_out a;

			memset(&a, 0, sizeof(a));
			a.attr_valid = 3600;
			fill_attr(&a.attr, in->nodeid);
			reply(in->unique, 0, &a, sizeof(a));
			break;
		}
		case FUSE_OPEN: {
			struct fuse_open_out o = { .fh = 1 };

			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_POLL:
		case FUSE_FLUSH:
		case FUSE_INTERRUPT:
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
			break;	/* never answered */
		case FUSE_RELEASE:
			reply(in->unique, 0, NULL, 0);
			break;
		default:
			reply(in->unique, ENOSYS, NULL, 0);
			break;
		}
	}
}
