/*
 * test_descriptors - id.raw[0] of SOCKET and POLL is resolved in the
 * descriptor table of the CALLING thread at the moment of the call, never
 * in another process (README "Security model", issue 8 item 4).  Each case
 * puts a different file at the same descriptor number in two tables and
 * checks that the answer comes from the caller's:
 *
 *   1. a fork child ADDs POLL on its own fd N (an empty pipe) while the
 *      parent's N is a readable pipe: queued, not "ready at once";
 *   2. a fork child MODIFYs a SOCKET kevent its parent registered: with
 *      its N naming another socket it gets BROKEN; with the same socket
 *      inherited and the parent's N closed it gets DONE (the parent's
 *      table is not consulted);
 *   3. a thread with its own table (unshare(CLONE_FILES) in a pthread: the
 *      state clone() without CLONE_FILES gives a thread) ADDs POLL and
 *      SOCKET on its own N: answers from its table on kernels with
 *      PIDFD_THREAD (6.9+), a clear per-ukevent EOPNOTSUPP before that;
 *   4. an unprivileged registrant exec's a setuid-root program that puts
 *      another socket at N; its unprivileged fork child MODIFYs and ADDs
 *      on N and gets answers from its own table (the setuid process is
 *      never consulted).  Needs root to set up (skipped otherwise, or when
 *      the temporary directory is mounted nosuid).
 */

#include "testutil.h"

#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

static struct ukevent uk_fd(__u32 type, int fd, __u32 event, __u32 u0)
{
	return uk_make(type, (__u32)fd, event, 0, u0, 0);
}

/* Exit status of a child that ran checks: 0 when all passed. */
static int child_done(void)
{
	fflush(stdout);
	_exit(t_fail ? 1 : 0);
}

static void reap_ok(pid_t pid, const char *name)
{
	int st = 0;

	CHECK(t_reap(pid, &st, 20000) >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, name);
}

/* 1. ADD from a fork child. */
static void fork_child_add(int kfd)
{
	int a[2], b[2];
	struct ukevent uk, ev[1];
	struct kevent_user_control h;
	pid_t pid;

	CHECK_RET(pipe2(a, O_CLOEXEC), 0, "fork/ADD: pipe A");
	CHECK_RET(write(a[1], "x", 1), 1, "fork/ADD: A readable");
	pid = t_fork();
	if (pid == 0) {
		CHECK_RET(pipe2(b, O_CLOEXEC), 0, "fork/ADD child: pipe B");
		CHECK_RET(dup2(b[0], a[0]), a[0], "fork/ADD child: N is the empty pipe B");
		uk = uk_fd(KEVENT_POLL, a[0], KEVENT_POLL_POLLIN, 0xa1);
		CHECK_RET(k_ctl(kfd, KEVENT_CTL_ADD, &uk, 1, &h), 0,
			  "fork/ADD child: POLL on its own N is queued (the parent's N is ready)");
		CHECK_EQ(h.num, 0, "fork/ADD child: nothing written back");
		CHECK_RET(k_wait(kfd, ev, 1, 0), 0, "fork/ADD child: nothing ready yet");
		CHECK_RET(write(b[1], "y", 1), 1, "fork/ADD child: write B");
		CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, "fork/ADD child: B fires");
		CHECK_HEX(ev[0].user[0], 0xa1, "fork/ADD child: it is the POLL kevent");
		CHECK_RET(k_remove1(kfd, uk, NULL), 0, "fork/ADD child: REMOVE");
		child_done();
	}
	reap_ok(pid, "fork child ADD resolves in the child's table");
	close(a[0]);
	close(a[1]);
}

/* 2. MODIFY from fork children of the registrant. */
static void fork_child_modify(int kfd)
{
	int s[2], t[2];
	struct ukevent uk;
	pid_t pid;

	CHECK_RET(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0, "fork/MODIFY: socket S");
	CHECK_RET(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t), 0, "fork/MODIFY: socket T");
	uk = uk_fd(KEVENT_SOCKET, s[0], KEVENT_SOCKET_RECV, 0xb1);
	CHECK_RET(k_add1(kfd, uk), 0, "fork/MODIFY: parent ADDs SOCKET on S at N");

	pid = t_fork();
	if (pid == 0) {
		CHECK_RET(dup2(t[0], s[0]), s[0], "fork/MODIFY child: N is socket T");
		uk.event = KEVENT_SOCKET_RECV;
		CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, "fork/MODIFY child: MODIFY");
		CHECK_HEX(uk.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "fork/MODIFY child: its N is another socket: BROKEN");
		child_done();
	}
	reap_ok(pid, "fork child MODIFY resolves in the child's table (other socket)");

	uk = uk_fd(KEVENT_SOCKET, s[0], KEVENT_SOCKET_RECV, 0xb1);
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, "fork/MODIFY: parent MODIFY");
	CHECK_HEX(uk.ret_flags, KEVENT_RET_DONE, "fork/MODIFY: in the parent N is S: DONE");

	{
		int go[2], ready[2];
		char c;

		CHECK_RET(pipe2(go, O_CLOEXEC), 0, "fork/MODIFY: pipe");
		CHECK_RET(pipe2(ready, O_CLOEXEC), 0, "fork/MODIFY: pipe");
		pid = t_fork();
		if (pid == 0) {
			CHECK_RET(read(go[0], &c, 1), 1, "fork/MODIFY child 2: parent closed N");
			uk = uk_fd(KEVENT_SOCKET, s[0], KEVENT_SOCKET_RECV, 0xb1);
			CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0,
				  "fork/MODIFY child 2: MODIFY");
			CHECK_HEX(uk.ret_flags, KEVENT_RET_DONE,
				  "fork/MODIFY child 2: same socket in its table: DONE (parent's N is closed)");
			child_done();
		}
		close(s[0]);
		CHECK_RET(write(go[1], "g", 1), 1, "fork/MODIFY: parent closed N, child 2 goes");
		reap_ok(pid, "fork child MODIFY resolves in the child's table (registrant's N closed)");
		close(go[0]);
		close(go[1]);
		close(ready[0]);
		close(ready[1]);
	}
	uk = uk_fd(KEVENT_SOCKET, s[0], 0, 0xb1);
	k_remove1(kfd, uk, NULL);
	close(s[1]);
	close(t[0]);
	close(t[1]);
}

/* 3. A thread with a table of its own. */
struct thr {
	int kfd, n, have_thread_pidfd;
	int r_add, e_add, num_add, r_wait, r_sock, e_sock, r_unshare;
	__u32 flags_add, user_wait, flags_sock;
};

static void *own_table_thread(void *arg)
{
	struct thr *t = arg;
	struct ukevent uk, ev[1];
	struct kevent_user_control h;
	int b[2], sock;

	t->r_unshare = unshare(CLONE_FILES);
	if (t->r_unshare != 0 || pipe2(b, O_CLOEXEC) != 0 || dup2(b[0], t->n) != t->n)
		return NULL;
	/* N is now an empty pipe here, a readable socket in the main thread. */
	uk = uk_fd(KEVENT_POLL, t->n, KEVENT_POLL_POLLIN, 0xc1);
	errno = 0;
	t->r_add = k_ctl(t->kfd, KEVENT_CTL_ADD, &uk, 1, &h);
	t->e_add = errno;
	t->num_add = (int)h.num;
	t->flags_add = uk.ret_flags;
	if (t->r_add == 0) {
		if (write(b[1], "z", 1) != 1)
			return NULL;
		t->r_wait = k_wait(t->kfd, ev, 1, 2000);
		t->user_wait = ev[0].user[0];
	}
	/* SOCKET on N: a pipe in this table. */
	uk = uk_fd(KEVENT_SOCKET, t->n, KEVENT_SOCKET_RECV, 0xc2);
	errno = 0;
	t->r_sock = k_ctl(t->kfd, KEVENT_CTL_ADD, &uk, 1, &h);
	t->e_sock = errno;
	t->flags_sock = uk.ret_flags;
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	(void)sock;
	return NULL;
}

static int kernel_has_pidfd_thread(void)
{
	long fd = syscall(SYS_pidfd_open, (pid_t)syscall(SYS_gettid), PIDFD_THREAD);

	if (fd < 0)
		return 0;
	close((int)fd);
	return 1;
}

static void own_table_thread_case(int kfd)
{
	struct thr t;
	pthread_t th;
	int s[2];

	memset(&t, 0, sizeof(t));
	CHECK_RET(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0, "thread: socket");
	CHECK_RET(write(s[1], "x", 1), 1, "thread: main thread's N readable");
	t.kfd = kfd;
	t.n = s[0];
	t.have_thread_pidfd = kernel_has_pidfd_thread();
	CHECK_RET(pthread_create(&th, NULL, own_table_thread, &t), 0, "thread: start");
	CHECK_RET(pthread_join(th, NULL), 0, "thread: join");
	CHECK_RET(t.r_unshare, 0, "thread: unshare(CLONE_FILES)");
	if (t.have_thread_pidfd) {
		CHECK_EQ(t.r_add, 0, "thread (own table): POLL on its N (empty pipe) is queued");
		CHECK_EQ(t.num_add, 0, "thread (own table): nothing written back");
		CHECK_EQ(t.r_wait, 1, "thread (own table): its pipe fires");
		CHECK_HEX(t.user_wait, 0xc1, "thread (own table): it is the POLL kevent");
		CHECK_EQ(t.r_sock, -1, "thread (own table): SOCKET on its N (a pipe) fails");
		CHECK_EQ(t.e_sock, EINVAL, "thread (own table): EINVAL (not a socket in its table)");
	} else {
		t_note("kernel without PIDFD_THREAD: a non-leader thread's own table is out of reach");
		CHECK_EQ(t.r_add, -1, "thread (own table, old kernel): POLL refused");
		CHECK_EQ(t.e_add, EOPNOTSUPP, "thread (own table, old kernel): EOPNOTSUPP");
		CHECK_HEX(t.flags_add, KEVENT_RET_BROKEN | KEVENT_RET_DONE, "thread (old kernel): BROKEN|DONE");
		CHECK_EQ(t.e_sock, EOPNOTSUPP, "thread (own table, old kernel): SOCKET refused too");
	}
	{
		struct ukevent uk = uk_fd(KEVENT_POLL, s[0], 0, 0xc1);

		k_remove1(kfd, uk, NULL);
	}
	close(s[0]);
	close(s[1]);
}

/* 4. A child of a setuid program. */
static int holder_main(int n, int report)
{
	int t[2];
	char e = geteuid() == 0 ? 'r' : 'u';

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, t) != 0 || write(t[1], "h", 1) != 1 ||
	    dup2(t[0], n) != n)
		e = 'f';
	if (write(report, &e, 1) != 1)
		return 1;
	for (;;)
		pause();
}

/* A directory every user may search (all of its ancestors o+x). */
static int searchable(const char *d)
{
	char buf[256], *slash;
	struct stat st;

	snprintf(buf, sizeof(buf), "%s", d);
	for (;;) {
		if (stat(buf[0] ? buf : "/", &st) != 0 || !(st.st_mode & S_IXOTH))
			return 0;
		slash = strrchr(buf, '/');
		if (slash == NULL || buf[0] == 0)
			return 1;
		*slash = 0;
	}
}

static void setuid_case(int kfd_unused)
{
	static const char *const bases[] = { "/tmp", "/var/tmp", "" };
	char dir[64], path[96], exe[4096];
	unsigned bi;
	int rep[2], go[2], res[2], src, dst;
	ssize_t n;
	pid_t u;
	int st = 0;
	char e_holder = 0;

	(void)kfd_unused;
	if (geteuid() != 0) {
		t_note("SKIP setuid case: needs root to make a setuid program");
		return;
	}
	for (bi = 0; bi < sizeof(bases) / sizeof(bases[0]); bi++)
		if (searchable(bases[bi][0] ? bases[bi] : "/"))
			break;
	if (bi == sizeof(bases) / sizeof(bases[0])) {
		t_note("SKIP setuid case: no directory that nobody may search");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/kevent-desc.XXXXXX", bases[bi]);
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0) {
		CHECK(0, "setuid: temporary directory");
		return;
	}
	snprintf(path, sizeof(path), "%s/holder", dir);
	src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	CHECK(src >= 0 && dst >= 0, "setuid: copy the test program");
	while (src >= 0 && dst >= 0 && (n = read(src, exe, sizeof(exe))) > 0)
		if (write(dst, exe, (size_t)n) != n)
			break;
	close(src);
	close(dst);
	CHECK_RET(chown(path, 0, 0), 0, "setuid: chown root");
	CHECK_RET(chmod(path, 04755), 0, "setuid: chmod 4755");
	CHECK_RET(pipe2(rep, 0), 0, "setuid: pipe");
	CHECK_RET(pipe2(go, O_CLOEXEC), 0, "setuid: pipe");
	CHECK_RET(pipe2(res, O_CLOEXEC), 0, "setuid: pipe");

	u = t_fork();
	if (u == 0) {
		/* U: the unprivileged registrant. */
		int kq, s[2];
		pid_t c;
		char arg_n[16], arg_r[16];
		struct ukevent uk, ev[1];
		struct kevent_user_control h;
		char e = 0;

		close(rep[0]);
		/* Opened before dropping privileges: who may open the device is
		 * not the point here (tests/host/security.sh). */
		kq = open(t_dev, O_RDWR | O_CLOEXEC);
		if (kq < 0 || setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
			e = 'n';
			if (write(rep[1], &e, 1) != 1)
				_exit(3);
			_exit(3);
		}
		/* The queue must survive the exec in the child; only kq is CLOEXEC. */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
			_exit(4);
		uk = uk_fd(KEVENT_SOCKET, s[0], KEVENT_SOCKET_RECV, 0xd1);
		CHECK_RET(k_add1(kq, uk), 0, "setuid: nobody ADDs SOCKET on S at N");
		c = t_fork();
		if (c == 0) {
			/* C: the unprivileged child; waits for the setuid holder. */
			close(rep[1]);
			CHECK_RET(read(go[0], &e, 1), 1, "setuid child: holder is up");
			uk = uk_fd(KEVENT_SOCKET, s[0], KEVENT_SOCKET_RECV, 0xd1);
			CHECK_RET(k_ctl(kq, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, "setuid child: MODIFY");
			CHECK_HEX(uk.ret_flags, KEVENT_RET_DONE,
				  "setuid child: MODIFY resolves N in its own table (S): DONE");
			uk = uk_fd(KEVENT_POLL, s[0], KEVENT_POLL_POLLIN, 0xd2);
			CHECK_RET(k_ctl(kq, KEVENT_CTL_ADD, &uk, 1, &h), 0,
				  "setuid child: POLL on its N (S, empty) is queued; the holder's N is readable");
			CHECK_RET(k_wait(kq, ev, 1, 0), 0, "setuid child: nothing ready");
			CHECK_RET(write(s[1], "d", 1), 1, "setuid child: write to S");
			CHECK_RET(k_wait(kq, ev, 2, 2000) >= 1, 1, "setuid child: S fires");
			CHECK(ev[0].user[0] == 0xd1 || ev[0].user[0] == 0xd2,
			      "setuid child: it is one of its kevents");
			e = t_fail ? 'F' : 'P';
			if (write(res[1], &e, 1) != 1)
				_exit(1);
			child_done();
		}
		/* U becomes the setuid holder, with another socket at N. */
		snprintf(arg_n, sizeof(arg_n), "%d", s[0]);
		snprintf(arg_r, sizeof(arg_r), "%d", rep[1]);
		execl(path, path, "--holder", arg_n, arg_r, (char *)NULL);
		e = 'x';
		if (write(rep[1], &e, 1) != 1)
			_exit(5);
		_exit(5);
	}
	close(rep[1]);
	{
		char e = 0;

		if (read(rep[0], &e, 1) != 1 || e == 'f' || e == 'n') {
			t_note("setuid case: report '%c'", e ? e : '-');
			e = 'f';
			CHECK(0, "setuid: the holder started");
		} else if (e == 'x') {
			t_note("SKIP setuid case: nobody cannot execute %s", path);
		} else if (e != 'r') {
			t_note("SKIP setuid case: %s is mounted nosuid (the holder is not root)", dir);
			kill(u, SIGKILL);
		} else {
			t_note("setuid holder runs as root with another socket at N");
			CHECK_RET(write(go[1], "g", 1), 1, "setuid: child goes");
		}
		e_holder = e;
	}
	close(go[1]);
	close(res[1]);
	if (e_holder == 'r') {
		/* C is U's child (U is now the holder): its verdict comes
		 * through the result pipe. */
		char v = 0;

		CHECK(poll_fd(res[0], POLLIN, 20000) & POLLIN, "setuid: the child reports");
		CHECK(read(res[0], &v, 1) == 1 && v == 'P',
		      "setuid program's child: answers from its own table only");
	}
	kill(u, SIGKILL);
	t_reap(u, &st, 5000);
	close(rep[0]);
	close(go[0]);
	close(res[0]);
	unlink(path);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	int kfd;

	if (argc == 4 && strcmp(argv[1], "--holder") == 0)
		return holder_main(atoi(argv[2]), atoi(argv[3]));
	t_init(argc, argv, "test_descriptors");
	kfd = dev_open(t_dev, O_RDWR);
	fork_child_add(kfd);
	fork_child_modify(kfd);
	own_table_thread_case(kfd);
	setuid_case(kfd);
	close(kfd);
	return t_done();
}
