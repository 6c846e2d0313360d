/*
 * hangfs - a FUSE filesystem whose one file's pages never arrive.
 *
 *   hangfs MOUNTPOINT
 *
 * Mounts (as root, raw /dev/fuse, no libfuse) a directory holding one
 * regular file "f" of 64 KiB, mode 0666, and serves every request except
 * READ, which it never answers. A process that maps "f" and touches it (or
 * makes someone else touch it, e.g. the kevent daemon reading an ioctl
 * argument there with process_vm_readv) blocks until hangfs exits, which
 * aborts the connection. Prints "ready" on stdout once mounted; exits on
 * SIGTERM/SIGKILL (the kernel then fails the pending READs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE (64 * 1024)
#define FILE_INO 2

static int dev;

static void reply(__u64 unique, int error, const void *body, size_t len)
{
	struct fuse_out_header oh;
	char buf[4096];

	oh.len = sizeof(oh) + len;
	oh.error = error;
	oh.unique = unique;
	memcpy(buf, &oh, sizeof(oh));
	if (len)
		memcpy(buf + sizeof(oh), body, len);
	if (write(dev, buf, oh.len) < 0 && errno != ENOENT)
		perror("hangfs: write");
}

static void fill_attr(struct fuse_attr *a, __u64 ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->nlink = 1;
	a->blksize = 4096;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0666;
		a->size = FILE_SIZE;
		a->blocks = FILE_SIZE / 512;
	}
}

int main(int argc, char **argv)
{
	static char buf[FUSE_MIN_READ_BUFFER + 128 * 1024];
	char opts[256];

	if (argc != 2) {
		fprintf(stderr, "usage: hangfs MOUNTPOINT\n");
		return 2;
	}
	dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		perror("hangfs: /dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40755,user_id=0,group_id=0,allow_other", dev);
	if (mount("hangfs", argv[1], "fuse.hangfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		perror("hangfs: mount");
		return 1;
	}
	for (;;) {
		ssize_t n = read(dev, buf, sizeof(buf));
		struct fuse_in_header *ih = (void *)buf;
		void *in = buf + sizeof(*ih);

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
				continue;
			if (errno != ENODEV)
				perror("hangfs: read");
			return 0;
		}
		if ((size_t)n < sizeof(*ih))
			continue;
		switch (ih->opcode) {
		case FUSE_INIT: {
			struct fuse_init_in *ii = in;
			struct fuse_init_out io;

			memset(&io, 0, sizeof(io));
			io.major = FUSE_KERNEL_VERSION;
			io.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ?
					   ii->minor : FUSE_KERNEL_MINOR_VERSION;
			io.max_readahead = 0;
			io.max_write = 4096;
			reply(ih->unique, 0, &io, sizeof(io));
			printf("ready\n");
			fflush(stdout);
			break;
		}
		case FUSE_LOOKUP: {
			struct fuse_entry_out eo;

			if (strcmp((char *)in, "f") != 0) {
				reply(ih->unique, -ENOENT, NULL, 0);
				break;
			}
			memset(&eo, 0, sizeof(eo));
			eo.nodeid = FILE_INO;
			eo.attr_valid = 3600;
			eo.entry_valid = 3600;
			fill_attr(&eo.attr, FILE_INO);
			reply(ih->unique, 0, &eo, sizeof(eo));
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out ao;

			memset(&ao, 0, sizeof(ao));
			ao.attr_valid = 3600;
			fill_attr(&ao.attr, ih->nodeid);
			reply(ih->unique, 0, &ao, sizeof(ao));
			break;
		}
		case FUSE_OPEN:
		case FUSE_OPENDIR: {
			struct fuse_open_out oo;

			memset(&oo, 0, sizeof(oo));
			oo.fh = 1;
			/* Keep the page cache: an open must not wait for the
			 * page a pending READ holds locked. */
			oo.open_flags = FOPEN_KEEP_CACHE;
			reply(ih->unique, 0, &oo, sizeof(oo));
			break;
		}
		case FUSE_READ:
			/* The point of hangfs: never answered. */
			break;
		case FUSE_INTERRUPT:
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
			break;
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
		case FUSE_FLUSH:
			reply(ih->unique, 0, NULL, 0);
			break;
		case FUSE_DESTROY:
			reply(ih->unique, 0, NULL, 0);
			return 0;
		default:
			reply(ih->unique, -ENOSYS, NULL, 0);
			break;
		}
	}
}
