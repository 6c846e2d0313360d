/*
 * test_inode - KEVENT_INODE (docs/ABI.md section 4, section 5 item 4).
 *
 * id.raw[0] is a descriptor of a directory or file.  A directory's kevent
 * fires CREATE when an entry appears (file, directory, symlink, device
 * node, FIFO, hard link, rename into it) and REMOVE when one disappears
 * (unlink, rmdir, rename out).  Deleting the watched inode delivers its
 * kevents as BROKEN|DONE; a watched regular file reports only that.
 * Deliveries carry DONE and ret_data 0, are edge-triggered and coalesce.
 *
 * Environment (besides KEVENT_SLACK_MS / KEVENT_TRANSPORT):
 *   KEVENT_INODE_DIRS        space-separated directories, one per filesystem
 *                            to test (default "/tmp").  Each gets a scratch
 *                            directory.  Missing ones are skipped with a
 *                            note; if none is usable the program exits 77.
 *   KEVENT_INODE_BACKEND     what the daemon runs with (auto, fanotify or
 *                            inotify).  With "fanotify", a filesystem that
 *                            fanotify cannot serve is skipped with a note.
 *   KEVENT_DAEMON_PID        the daemon's pid: kernel marks are then counted
 *                            in /proc/PID/fdinfo (one per watched inode,
 *                            shared, gone with the last kevent; of the
 *                            forced backend).  Unset: those checks are skipped.
 *   KEVENT_INODE_TRANSCRIPT  file to write one line per observation to, so
 *                            that runs under two backends can be compared
 *                            byte for byte (tests/host/inode-ext4.sh does).
 */

#include "testutil.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>

#define SETTLE_MS	60	/* after the expected events: room for extras */
#define QUIET_MS	250	/* "nothing happens": longer than the daemon's sweep */
#define EVENT_MS	1000	/* events must come within this (+ slack) */
#define MANY		500

#define CR	KEVENT_INODE_CREATE
#define RM	KEVENT_INODE_REMOVE
#define BD	(KEVENT_RET_BROKEN | KEVENT_RET_DONE)

static const char *backend = "";
static FILE *transcript;
static const char *fs;		/* label of the filesystem under test */
static char work[2048];		/* scratch directory on it */
static int daemon_pid;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void rec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void rec(const char *fmt, ...)
{
	va_list ap;

	if (!transcript)
		return;
	fprintf(transcript, "%s ", fs);
	va_start(ap, fmt);
	vfprintf(transcript, fmt, ap);
	va_end(ap);
	fputc('\n', transcript);
	fflush(transcript);
}

static char *at(const char *rel)
{
	static char bufs[4][4096];
	static int i;
	char *b = bufs[i++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", work, rel);
	return b;
}

static int q_open(void)
{
	return dev_open(t_dev, O_RDWR | O_NONBLOCK);
}

static struct ukevent uk_inode(int fd, __u32 event, __u32 req_flags, __u32 u0)
{
	return uk_make(KEVENT_INODE, (__u32)fd, event, req_flags, u0, 0x1d0de);
}

static int by_user(const void *a, const void *b)
{
	const struct ukevent *x = a, *y = b;

	return x->user[0] < y->user[0] ? -1 : x->user[0] > y->user[0];
}

static int fetch(int q, struct ukevent *out, int max)
{
	int r = k_wait(q, out, (unsigned)max, 0);

	return r < 0 ? 0 : r;
}

/*
 * Collects events from the non-blocking queue q until `want` have come or
 * wait_ms (+ slack) passed, then SETTLE_MS more for any extra.  Sorted by
 * user[0] (two kevents firing together may be queued in either order).
 */
static int collect(int q, struct ukevent *out, int want, int max, long wait_ms)
{
	long long end = now_ms() + wait_ms + t_slack;
	int n = 0;

	while (n < want && n < max) {
		long left = (long)(end - now_ms());

		if (left <= 0)
			break;
		poll_fd(q, POLLIN, (int)left);
		n += fetch(q, out + n, max - n);
	}
	sleep_ms(SETTLE_MS);
	if (n < max)
		n += fetch(q, out + n, max - n);
	qsort(out, (size_t)n, sizeof(*out), by_user);
	return n;
}

/* One change must give exactly the listed kevents (users u[0..k-1]). */
static void expect(int q, const char *step, int fd, const __u32 *users,
		   const __u32 *events, int k, __u32 flags)
{
	struct ukevent out[8];
	char name[256];
	int n, i;

	n = collect(q, out, k, 8, EVENT_MS);
	snprintf(name, sizeof(name), "%s: %s: %d delivery(ies)", fs, step, k);
	CHECK_EQ(n, k, name);
	rec("%s: n=%d", step, n);
	for (i = 0; i < n; i++) {
		rec("%s: u=%u ev=%#x rf=%#x rd=%u,%u", step, out[i].user[0],
		    out[i].event, out[i].ret_flags, out[i].ret_data[0],
		    out[i].ret_data[1]);
		if (i >= k)
			continue;
		snprintf(name, sizeof(name), "%s: %s: kevent %u delivered", fs, step, users[i]);
		CHECK_EQ(out[i].user[0], users[i], name);
		snprintf(name, sizeof(name), "%s: %s: ret_flags", fs, step);
		CHECK_HEX(out[i].ret_flags, flags, name);
		snprintf(name, sizeof(name), "%s: %s: whole ukevent back (id, type, event, ret_data 0)", fs, step);
		CHECK(out[i].id.raw[0] == (__u32)fd && out[i].id.raw[1] == 0 &&
		      out[i].type == KEVENT_INODE && out[i].event == events[i] &&
		      out[i].ret_data[0] == 0 && out[i].ret_data[1] == 0 &&
		      out[i].user[1] == 0x1d0de, name);
	}
}

static void expect1(int q, const char *step, int fd, __u32 user, __u32 event, __u32 flags)
{
	expect(q, step, fd, &user, &event, 1, flags);
}

static void expect_none(int q, const char *step)
{
	struct ukevent out[8];
	char name[256];
	int n;

	poll_fd(q, POLLIN, QUIET_MS);
	n = fetch(q, out, 8);
	snprintf(name, sizeof(name), "%s: %s: nothing delivered", fs, step);
	CHECK_EQ(n, 0, name);
	rec("%s: n=%d", step, n);
}

static void add_ok(int q, struct ukevent uk, const char *what)
{
	char name[256];

	snprintf(name, sizeof(name), "%s: ADD %s: queued (returns 0)", fs, what);
	CHECK_RET(k_add1(q, uk), 0, name);
}

/* ADD that must fail: -1/err, written back BROKEN|DONE, hdr.num 1. */
static void add_fails(int q, struct ukevent uk, int err, const char *what)
{
	struct kevent_user_control h;
	char name[256];
	int r, e;

	r = k_ctl(q, KEVENT_CTL_ADD, &uk, 1, &h);
	e = errno;
	rec("ADD %s: r=%d errno=%s rf=%#x num=%u", what, r, r < 0 ? t_errname(e) : "-",
	    uk.ret_flags, h.num);
	snprintf(name, sizeof(name), "%s: ADD %s: -1/%s", fs, what, t_errname(err));
	errno = e;
	CHECK_ERR(r, err, name);
	snprintf(name, sizeof(name), "%s: ADD %s: written back BROKEN|DONE, num 1", fs, what);
	CHECK(uk.ret_flags == BD && h.num == 1, name);
}

static void remove_ok(int q, struct ukevent uk, __u32 flags, const char *what)
{
	char name[256];
	__u32 f = 0;

	snprintf(name, sizeof(name), "%s: REMOVE %s: returns 0", fs, what);
	CHECK_RET(k_remove1(q, uk, &f), 0, name);
	snprintf(name, sizeof(name), "%s: REMOVE %s: ret_flags", fs, what);
	CHECK_HEX(f, flags, name);
}

static void must(int ok, const char *what)
{
	if (!ok) {
		printf("not ok - %s: %s: %s\n", fs, what, strerror(errno));
		t_fail++;
	}
}

static void touch(const char *p)
{
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	must(fd >= 0, p);
	if (fd >= 0)
		close(fd);
}

static int open_dir(const char *p)
{
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	must(fd >= 0, p);
	return fd;
}

/* Kernel marks of the daemon (fanotify inode marks, inotify watches). */
struct marks {
	int fan, ino;
};

static int count_marks(struct marks *m)
{
	char path[64], line[512];
	struct dirent *de;
	DIR *d;

	m->fan = m->ino = 0;
	if (daemon_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo", daemon_pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char p[320];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "fanotify ino:", 13) == 0)
				m->fan++;
			else if (strncmp(line, "inotify wd:", 11) == 0)
				m->ino++;
		}
		fclose(f);
	}
	closedir(d);
	return 1;
}

/*
 * The daemon's marks must become base + delta (RELEASE after close() may
 * reach the daemon a moment later: retried for up to a second).
 */
static void check_marks(const struct marks *base, int delta, const char *what)
{
	struct marks m;
	char name[256];
	long long end = now_ms() + 1000 + t_slack;
	int total, want = base->fan + base->ino + delta;

	if (daemon_pid <= 0)
		return;
	for (;;) {
		count_marks(&m);
		total = m.fan + m.ino;
		if (total == want || now_ms() > end)
			break;
		sleep_ms(20);
	}
	snprintf(name, sizeof(name), "%s: %s: daemon holds %d kernel mark(s)", fs, what, want);
	CHECK_EQ(total, want, name);
	if (strcmp(backend, "fanotify") == 0) {
		snprintf(name, sizeof(name), "%s: %s: all new marks are fanotify marks", fs, what);
		CHECK_EQ(m.ino, base->ino, name);
	} else if (strcmp(backend, "inotify") == 0) {
		snprintf(name, sizeof(name), "%s: %s: all new marks are inotify watches", fs, what);
		CHECK_EQ(m.fan, base->fan, name);
	}
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

/* Each kind of entry creation, then each kind of removal. */
static void test_each_kind(int q)
{
	struct ukevent kc, kr;
	int dfd, have_dev;

	must(mkdir(at("D"), 0755) == 0, "mkdir D");
	must(mkdir(at("S"), 0755) == 0, "mkdir S");
	touch(at("S/hard"));
	touch(at("S/moved"));
	dfd = open_dir(at("D"));
	kc = uk_inode(dfd, CR, 0, 1);
	kr = uk_inode(dfd, RM, 0, 2);
	add_ok(q, kc, "CREATE on a directory");
	add_ok(q, kr, "REMOVE on the same directory");

	touch(at("D/file"));
	expect1(q, "create file", dfd, 1, CR, KEVENT_RET_DONE);
	must(mkdir(at("D/dir"), 0755) == 0, "mkdir D/dir");
	expect1(q, "create directory", dfd, 1, CR, KEVENT_RET_DONE);
	must(symlink("file", at("D/symlink")) == 0, "symlink");
	expect1(q, "create symlink", dfd, 1, CR, KEVENT_RET_DONE);
	have_dev = mknod(at("D/null"), S_IFCHR | 0600, makedev(1, 3)) == 0;
	if (have_dev)
		expect1(q, "create device node", dfd, 1, CR, KEVENT_RET_DONE);
	else
		t_note("%s: mknod of a device node refused (%s): not tested", fs, strerror(errno));
	must(mkfifo(at("D/fifo"), 0600) == 0, "mkfifo");
	expect1(q, "create FIFO", dfd, 1, CR, KEVENT_RET_DONE);
	must(link(at("S/hard"), at("D/hard")) == 0, "link");
	expect1(q, "create hard link", dfd, 1, CR, KEVENT_RET_DONE);
	must(rename(at("S/moved"), at("D/moved")) == 0, "rename into");
	expect1(q, "rename into", dfd, 1, CR, KEVENT_RET_DONE);

	must(unlink(at("D/file")) == 0, "unlink");
	expect1(q, "unlink file", dfd, 2, RM, KEVENT_RET_DONE);
	must(rmdir(at("D/dir")) == 0, "rmdir");
	expect1(q, "rmdir", dfd, 2, RM, KEVENT_RET_DONE);
	must(unlink(at("D/symlink")) == 0, "unlink symlink");
	expect1(q, "unlink symlink", dfd, 2, RM, KEVENT_RET_DONE);
	if (have_dev) {
		must(unlink(at("D/null")) == 0, "unlink device node");
		expect1(q, "unlink device node", dfd, 2, RM, KEVENT_RET_DONE);
	}
	must(unlink(at("D/fifo")) == 0, "unlink FIFO");
	expect1(q, "unlink FIFO", dfd, 2, RM, KEVENT_RET_DONE);
	must(unlink(at("D/hard")) == 0, "unlink hard link");
	expect1(q, "unlink hard link", dfd, 2, RM, KEVENT_RET_DONE);
	must(rename(at("D/moved"), at("S/moved")) == 0, "rename out");
	expect1(q, "rename out", dfd, 2, RM, KEVENT_RET_DONE);

	/* Changes elsewhere and to the directory's own attributes: nothing. */
	touch(at("S/elsewhere"));
	must(chmod(at("D"), 0700) == 0, "chmod D");
	expect_none(q, "changes outside the directory");

	remove_ok(q, kc, KEVENT_RET_DONE, "the CREATE kevent");
	remove_ok(q, kr, KEVENT_RET_DONE, "the REMOVE kevent");
	close(dfd);
}

/* rename(2) over an existing name. */
static void test_rename_over(int q)
{
	static const __u32 both_u[2] = { 10, 11 }, both_e[2] = { CR, RM };
	struct ukevent kc, kr;
	int dfd = open_dir(at("D"));

	touch(at("D/a"));
	touch(at("D/b"));
	touch(at("S/c"));
	kc = uk_inode(dfd, CR, 0, 10);
	kr = uk_inode(dfd, RM, 0, 11);
	add_ok(q, kc, "CREATE for rename over");
	add_ok(q, kr, "REMOVE for rename over");

	/* Inside the directory: one name goes, one (replaced) name comes. */
	must(rename(at("D/a"), at("D/b")) == 0, "rename D/a over D/b");
	expect(q, "rename over an existing name inside", dfd, both_u, both_e, 2,
	       KEVENT_RET_DONE);
	/* From elsewhere over an existing name: the name stays, CREATE only. */
	must(rename(at("S/c"), at("D/b")) == 0, "rename S/c over D/b");
	expect1(q, "rename over an existing name from outside", dfd, 10, CR,
		KEVENT_RET_DONE);

	remove_ok(q, kc, KEVENT_RET_DONE, "CREATE");
	remove_ok(q, kr, KEVENT_RET_DONE, "REMOVE");
	must(unlink(at("D/b")) == 0, "unlink D/b");
	close(dfd);
}

/* Several changes between two WAITs: one delivery; re-armed afterwards. */
static void test_coalesce_and_rearm(int q)
{
	struct ukevent k;
	int dfd = open_dir(at("D")), i;
	char rel[32];

	k = uk_inode(dfd, CR | RM, 0, 20);
	add_ok(q, k, "CREATE|REMOVE");
	for (i = 0; i < 5; i++) {
		snprintf(rel, sizeof(rel), "D/c%d", i);
		touch(at(rel));
	}
	must(unlink(at("D/c0")) == 0 && unlink(at("D/c1")) == 0, "unlink two");
	must(mkdir(at("D/cdir"), 0755) == 0, "mkdir");
	expect1(q, "eight changes coalesce", dfd, 20, CR | RM, KEVENT_RET_DONE);
	expect_none(q, "no second delivery without a new change");
	must(unlink(at("D/c2")) == 0, "unlink");
	expect1(q, "a new change after the delivery", dfd, 20, CR | RM, KEVENT_RET_DONE);
	remove_ok(q, k, KEVENT_RET_DONE, "CREATE|REMOVE (still registered)");
	for (i = 3; i < 5; i++) {
		snprintf(rel, sizeof(rel), "D/c%d", i);
		unlink(at(rel));
	}
	rmdir(at("D/cdir"));
	close(dfd);
}

static void test_oneshot(int q)
{
	struct ukevent k;
	int dfd = open_dir(at("D"));

	k = uk_inode(dfd, CR, KEVENT_REQ_ONESHOT, 30);
	add_ok(q, k, "ONESHOT CREATE");
	touch(at("D/o1"));
	expect1(q, "ONESHOT first change", dfd, 30, CR, KEVENT_RET_DONE);
	touch(at("D/o2"));
	expect_none(q, "ONESHOT: nothing after the delivery");
	remove_ok(q, k, BD, "the delivered ONESHOT kevent (gone)");
	unlink(at("D/o1"));
	unlink(at("D/o2"));
	close(dfd);
}

static void test_modify(int q)
{
	struct ukevent k, m;
	char name[256];
	int dfd = open_dir(at("D"));

	k = uk_inode(dfd, CR, 0, 40);
	add_ok(q, k, "CREATE to be modified");
	m = k;
	m.event = RM;
	snprintf(name, sizeof(name), "%s: MODIFY CREATE -> REMOVE: returns 0", fs);
	CHECK_RET(k_ctl(q, KEVENT_CTL_MODIFY, &m, 1, NULL), 0, name);
	snprintf(name, sizeof(name), "%s: MODIFY: ret_flags DONE", fs);
	CHECK_HEX(m.ret_flags, KEVENT_RET_DONE, name);
	touch(at("D/m"));
	expect_none(q, "after MODIFY to REMOVE a create is ignored");
	must(unlink(at("D/m")) == 0, "unlink");
	expect1(q, "after MODIFY to REMOVE an unlink fires", dfd, 40, RM, KEVENT_RET_DONE);
	remove_ok(q, m, KEVENT_RET_DONE, "the modified kevent");
	close(dfd);
}

/* Kevents on one directory share one kernel mark; it goes with the last. */
static void test_shared_mark(int q)
{
	static const __u32 u2[2] = { 50, 51 }, e2[2] = { CR, CR };
	struct ukevent a, b, c;
	struct marks base;
	int q2 = q_open(), dfd = open_dir(at("D"));

	count_marks(&base);
	a = uk_inode(dfd, CR, 0, 50);
	b = uk_inode(dfd, CR, 0, 51);
	c = uk_inode(dfd, CR, 0, 52);
	add_ok(q, a, "first kevent on D");
	add_ok(q, b, "second kevent on D");
	add_ok(q2, c, "third kevent on D, other queue");
	check_marks(&base, 1, "three kevents on one directory");
	touch(at("D/s1"));
	expect(q, "shared mark, first queue", dfd, u2, e2, 2, KEVENT_RET_DONE);
	expect1(q2, "shared mark, second queue", dfd, 52, CR, KEVENT_RET_DONE);
	remove_ok(q, a, KEVENT_RET_DONE, "first of three");
	close(q2);
	check_marks(&base, 1, "one kevent left");
	touch(at("D/s2"));
	expect1(q, "the last kevent still fires", dfd, 51, CR, KEVENT_RET_DONE);
	remove_ok(q, b, KEVENT_RET_DONE, "the last one");
	check_marks(&base, 0, "no kevent left");
	unlink(at("D/s1"));
	unlink(at("D/s2"));
	close(dfd);
}

/* Deleting the watched inode: BROKEN|DONE, then it is gone. */
static void test_deleted(int q)
{
	static const __u32 u2[2] = { 60, 61 }, e2[2] = { CR | RM, CR };
	struct ukevent a, b, f;
	struct marks base;
	int efd, ffd;

	count_marks(&base);
	must(mkdir(at("E"), 0755) == 0, "mkdir E");
	efd = open_dir(at("E"));
	a = uk_inode(efd, CR | RM, 0, 60);
	b = uk_inode(efd, CR, KEVENT_REQ_ONESHOT, 61);
	add_ok(q, a, "CREATE|REMOVE on E");
	add_ok(q, b, "ONESHOT CREATE on E");
	/* The program keeps E open, as a program using kevent would. */
	must(rmdir(at("E")) == 0, "rmdir E");
	expect(q, "watched directory removed", efd, u2, e2, 2, BD);
	remove_ok(q, a, BD, "a broken kevent (gone after delivery)");
	check_marks(&base, 0, "after the directory was removed");
	add_fails(q, uk_inode(efd, CR, 0, 62), ENOENT, "on a removed directory");
	close(efd);

	/* A watched regular file reports only its own deletion. */
	touch(at("F"));
	ffd = open(at("F"), O_RDWR | O_CLOEXEC);
	must(ffd >= 0, "open F");
	f = uk_inode(ffd, CR | RM, 0, 70);
	add_ok(q, f, "CREATE|REMOVE on a regular file");
	must(write(ffd, "x", 1) == 1, "write F");
	must(link(at("F"), at("F2")) == 0, "link F F2");
	must(unlink(at("F2")) == 0, "unlink F2");
	touch(at("G"));
	must(unlink(at("G")) == 0, "unlink G");
	expect_none(q, "a watched file: writes, links, siblings");
	must(unlink(at("F")) == 0, "unlink F");
	expect1(q, "watched file deleted", ffd, 70, CR | RM, BD);
	remove_ok(q, f, BD, "the broken file kevent (gone)");
	close(ffd);
}

static void test_bad_descriptors(int q)
{
	int sv[2], p[2], bad = 4000;

	must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	must(pipe2(p, O_CLOEXEC) == 0, "pipe");
	while (fcntl(bad, F_GETFD) != -1)
		bad++;
	add_fails(q, uk_inode(sv[0], CR, 0, 80), EINVAL, "on a socket");
	add_fails(q, uk_inode(p[0], CR, 0, 81), EINVAL, "on a pipe");
	add_fails(q, uk_inode(bad, CR, 0, 82), ENODEV, "on an fd that does not exist");
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

/*
 * The kevent device itself (a file served by the daemon on the FUSE-file
 * transport, a character device under CUSE): watching it must not make the
 * daemon wait for itself.
 */
static void test_own_device(int q)
{
	struct ukevent k = uk_inode(q, CR | RM, 0, 90);
	char name[256];
	int r, e;

	if (strcmp(backend, "fanotify") != 0) {
		add_ok(q, k, "on the kevent device's own descriptor");
		remove_ok(q, k, KEVENT_RET_DONE, "the kevent on the device");
		return;
	}
	/*
	 * Forced fanotify never marks a FUSE file (marking would ask its
	 * server, here the daemon itself); devtmpfs may lack file handles.
	 * Either way the daemon must answer.
	 */
	r = k_add1(q, k);
	e = errno;
	snprintf(name, sizeof(name), "%s: ADD on the device, forced fanotify: answered", fs);
	CHECK(r == 0 || e == EOPNOTSUPP || e == ENODEV || e == EXDEV, name);
	if (r == 0)
		k_remove1(q, k, NULL);
}

/* 500 watched directories in one queue, all firing at once. */
static void test_many(void)
{
	static int fds[MANY];
	static struct ukevent uks[MANY], out[MANY + 8];
	static unsigned char seen[MANY];
	struct kevent_user_control h;
	struct rlimit rl;
	struct marks base;
	char rel[64], name[256];
	int q3, i, n, r, dup_or_bad = 0, distinct = 0, flags_ok = 1;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MANY + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < MANY + 64) {
		t_note("%s: SKIP %d directories: RLIMIT_NOFILE %lu", fs, MANY,
		       (unsigned long)rl.rlim_cur);
		return;
	}
	memset(seen, 0, sizeof(seen));
	count_marks(&base);
	q3 = q_open();
	must(mkdir(at("M"), 0755) == 0, "mkdir M");
	for (i = 0; i < MANY; i++) {
		snprintf(rel, sizeof(rel), "M/%03d", i);
		must(mkdir(at(rel), 0755) == 0, "mkdir M/i");
		fds[i] = open_dir(at(rel));
		uks[i] = uk_inode(fds[i], CR, 0, 1000 + (__u32)i);
	}
	r = k_ctl(q3, KEVENT_CTL_ADD, uks, MANY, &h);
	snprintf(name, sizeof(name), "%s: ADD %d directories in one call: 0, num 0", fs, MANY);
	CHECK(r == 0 && h.num == 0, name);
	check_marks(&base, MANY, "500 watched directories");
	for (i = 0; i < MANY; i++) {
		snprintf(rel, sizeof(rel), "M/%03d/x", i);
		touch(at(rel));
	}
	n = collect(q3, out, MANY, MANY + 8, 3000);
	snprintf(name, sizeof(name), "%s: %d directories: %d deliveries", fs, MANY, MANY);
	CHECK_EQ(n, MANY, name);
	for (i = 0; i < n; i++) {
		unsigned u = out[i].user[0] - 1000;

		if (u >= MANY || seen[u] || out[i].id.raw[0] != (__u32)fds[u])
			dup_or_bad++;
		else
			seen[u] = 1, distinct++;
		if (out[i].ret_flags != KEVENT_RET_DONE)
			flags_ok = 0;
	}
	snprintf(name, sizeof(name), "%s: %d directories: each exactly once, with its fd", fs, MANY);
	CHECK(distinct == MANY && dup_or_bad == 0, name);
	snprintf(name, sizeof(name), "%s: %d directories: ret_flags DONE", fs, MANY);
	CHECK(flags_ok, name);
	rec("%d directories: n=%d distinct=%d", MANY, n, distinct);
	close(q3);
	check_marks(&base, 0, "500 directories after close()");
	for (i = 0; i < MANY; i++) {
		close(fds[i]);
		snprintf(rel, sizeof(rel), "M/%03d/x", i);
		unlink(at(rel));
		snprintf(rel, sizeof(rel), "M/%03d", i);
		rmdir(at(rel));
	}
	rmdir(at("M"));
}

/* ------------------------------------------------------------------ */

static const char *fs_name(const char *dir)
{
	static char b[32];
	struct statfs s;

	if (statfs(dir, &s) != 0)
		return "?";
	switch ((unsigned long)s.f_type) {
	case 0xEF53:
		return "ext4";
	case 0x01021994:
		return "tmpfs";
	case 0x858458f6:
		return "ramfs";
	case 0x9123683E:
		return "btrfs";
	case 0x58465342:
		return "xfs";
	case 0x794c7630:
		return "overlayfs";
	}
	snprintf(b, sizeof(b), "0x%lx", (unsigned long)s.f_type);
	return b;
}

/*
 * Whether the daemon can watch this filesystem: with fanotify forced, a
 * refusal (e.g. tmpfs without file handles on older kernels) skips it.
 */
static int probe(int q, const char *dir)
{
	struct ukevent uk;
	int fd = open_dir(dir), r, e;
	char name[256];

	if (fd < 0)
		return 0;
	uk = uk_inode(fd, CR, 0, 99);
	r = k_add1(q, uk);
	e = errno;
	if (r == 0) {
		k_remove1(q, uk, NULL);
		close(fd);
		return 1;
	}
	close(fd);
	if (strcmp(backend, "fanotify") == 0) {
		t_note("SKIP %s: the daemon's forced fanotify cannot watch it (%s)", fs,
		       t_errname(e));
		rec("skipped: fanotify refused");
		return 0;
	}
	snprintf(name, sizeof(name), "%s: ADD on the scratch directory", fs);
	errno = e;
	CHECK_RET(r, 0, name);
	return 0;
}

static void cleanup(void)
{
	static const char *const names[] = { "D", "S/hard", "S/moved", "S/elsewhere",
					     "S", "F", NULL };
	int i;

	for (i = 0; names[i]; i++)
		if (unlink(at(names[i])) != 0)
			rmdir(at(names[i]));
	chmod(at("D"), 0755);
	rmdir(at("D"));
	rmdir(work);
}

int main(int argc, char **argv)
{
	const char *s, *dirs;
	char *list, *tok, *save = NULL;
	int tested = 0, idx = 0, q;

	t_init(argc, argv, "test_inode");
	alarm(120);	/* two filesystems of 500 directories each under TCG */
	s = getenv("KEVENT_INODE_BACKEND");
	backend = s ? s : "";
	s = getenv("KEVENT_DAEMON_PID");
	daemon_pid = s ? atoi(s) : 0;
	if (daemon_pid <= 0)
		t_note("KEVENT_DAEMON_PID unset: kernel marks are not counted");
	s = getenv("KEVENT_INODE_TRANSCRIPT");
	if (s && *s) {
		transcript = fopen(s, "we");
		if (!transcript)
			t_note("cannot write the transcript %s: %s", s, strerror(errno));
	}
	dirs = getenv("KEVENT_INODE_DIRS");
	if (!dirs || !*dirs)
		dirs = "/tmp";
	list = strdup(dirs);

	for (tok = strtok_r(list, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		struct stat st;
		char label[64];

		snprintf(label, sizeof(label), "fs%d", ++idx);
		fs = label;
		if (stat(tok, &st) != 0 || !S_ISDIR(st.st_mode)) {
			t_note("SKIP %s %s: not available (%s)", label, tok, strerror(errno));
			rec("skipped: not available");
			continue;
		}
		snprintf(work, sizeof(work), "%s/kevent-inode.XXXXXX", tok);
		if (!mkdtemp(work)) {
			t_note("SKIP %s %s: mkdtemp: %s", label, tok, strerror(errno));
			rec("skipped: mkdtemp");
			continue;
		}
		t_note("%s: %s (%s), scratch %s, backend %s", label, tok, fs_name(tok), work,
		       *backend ? backend : "unset");
		q = q_open();
		if (!probe(q, work)) {
			close(q);
			rmdir(work);
			continue;
		}
		tested++;
		test_each_kind(q);
		test_rename_over(q);
		test_coalesce_and_rearm(q);
		test_oneshot(q);
		test_modify(q);
		test_shared_mark(q);
		test_deleted(q);
		test_bad_descriptors(q);
		test_own_device(q);
		expect_none(q, "nothing left over");
		close(q);
		test_many();
		cleanup();
	}
	free(list);
	if (transcript)
		fclose(transcript);
	if (!tested)
		t_skip_all("no filesystem of KEVENT_INODE_DIRS could be tested");
	return t_done();
}
