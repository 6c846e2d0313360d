/*
 * test_soak - many clients at once, every event accounted for, and a kill
 * storm (issue 8, "Tests").
 *
 *   soak   KEVENT_SOAK_CLIENTS (200) processes for KEVENT_SOAK_S seconds
 *          (default 5; scripts/soak runs 60): each on a queue of its own
 *          ADDs batches of ONESHOT timers and POLL kevents on its pipes,
 *          REMOVEs some, MODIFYs some, WAITs; every kevent it added ends in
 *          exactly one of "delivered once" or "removed before delivery",
 *          never both, never twice, never lost; nothing unknown arrives.
 *   storm  KEVENT_STORM_N (1000) clients, at most 50 alive at once, each
 *          doing ADD/WAIT/MODIFY/REMOVE/open/close on timers, pipes,
 *          sockets and POLL on another kevent queue, SIGKILLed at a random
 *          point 0-40 ms after it starts.  Every one must be reaped within
 *          10 s (a client stuck in D state is not), the daemon must still
 *          serve a fresh client afterwards, and, when KEVENT_DAEMON_PID is
 *          given (tests/host/death.sh does), the daemon's descriptor count
 *          must come back to its baseline within 5 s.
 *
 * `test_soak --soak-only` / `--storm-only` run one part.  Under emulation
 * (KEVENT_SLACK_MS >= 1000: the qemu VM without KVM) the defaults shrink to
 * 40 clients for 3 s and a storm of 200, unless the variables are set.
 */

#include "testutil.h"

#include <dirent.h>
#include <sys/socket.h>

#define BATCH 8

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 10) : def;
}

/* Per-client totals, in shared memory. */
struct tally {
	long added, delivered, removed, bad;
};

/* ------------------------------------------------------------------ */
/* soak                                                                 */

enum { K_FREE, K_LIVE, K_DELIVERED, K_REMOVED };

#define IDS (1u << 15)
static unsigned char state[IDS];
static __u32 key0[IDS];	/* id.raw[0] of each kevent's key */

/* One client: returns the number of accounting errors. */
static long soak_client(int idx, long long end_ms, struct tally *t)
{
	int kfd = open(t_dev, O_RDWR | O_CLOEXEC);
	unsigned next = 1, live = 0, i;
	int p[2];
	long bad = 0;
	unsigned seed = (unsigned)(idx * 7919 + 1);
	struct ukevent uk[BATCH], ev[BATCH];
	struct kevent_user_control h;

	if (kfd < 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return 1;
	while (now_ms() < end_ms || live > 0) {
		int adding = now_ms() < end_ms && next + BATCH < IDS;
		unsigned n;
		int r, j;

		if (adding) {
			unsigned want = 1 + (unsigned)rand_r(&seed) % BATCH;

			for (n = 0; n < want; n++) {
				unsigned id = next++;

				if (rand_r(&seed) % 4 == 0)
					uk[n] = uk_make(KEVENT_POLL, (__u32)p[0], KEVENT_POLL_POLLIN,
							KEVENT_REQ_ONESHOT, id, (__u32)idx);
				else
					uk[n] = uk_timer(1 + (unsigned)rand_r(&seed) % 20,
							 KEVENT_REQ_ONESHOT, id, (__u32)idx);
				key0[id] = uk[n].id.raw[0];
				state[id] = K_LIVE;
			}
			memset(&h, 0, sizeof(h));
			r = k_ctl(kfd, KEVENT_CTL_ADD, uk, n, &h);
			t->added += n;
			live += n;
			/* Ready at once (a readable pipe): written back DONE. */
			for (j = 0; j < (int)h.num && j < (int)n; j++) {
				unsigned id = uk[j].user[0];

				if (id < next && state[id] == K_LIVE &&
				    uk[j].ret_flags == KEVENT_RET_DONE) {
					state[id] = K_DELIVERED;
					t->delivered++;
					live--;
				} else {
					bad++;
				}
			}
			if (r < 0)
				bad++;
			if (rand_r(&seed) % 3 == 0 && write(p[1], "x", 1) != 1 && errno != EAGAIN)
				bad++;
		}
		/* REMOVE one recent kevent now and then. */
		if (live > 0 && next > 1 && rand_r(&seed) % 5 == 0) {
			unsigned back = (unsigned)rand_r(&seed) % (next - 1 < 16 ? next - 1 : 16);
			unsigned id = next - 1 - back;

			if (id > 0 && state[id] == K_LIVE) {
				struct ukevent k = uk_make(KEVENT_TIMER, key0[id], 0, 0, id, (__u32)idx);
				__u32 f = 0;

				if (k_remove1(kfd, k, &f) != 0)
					bad++;
				if (f == KEVENT_RET_DONE) {
					state[id] = K_REMOVED;
					t->removed++;
					live--;
				}
			}
		}
		r = k_wait(kfd, ev, BATCH, 50);
		if (r < 0) {
			bad++;
			break;
		}
		for (j = 0; j < r; j++) {
			unsigned id = ev[j].user[0];

			if (ev[j].user[1] != (__u32)idx || id == 0 || id >= next ||
			    state[id] != K_LIVE || ev[j].ret_flags != KEVENT_RET_DONE) {
				bad++;
				continue;
			}
			state[id] = K_DELIVERED;
			t->delivered++;
			live--;
		}
		if (r > 0) {
			char b[64];

			while (read(p[0], b, sizeof(b)) > 0)
				;
		}
		if (live > 0 && now_ms() > end_ms + 10000) {
			bad += live;	/* lost: never delivered */
			break;
		}
		/* After the end, make the POLL kevents still waiting fire. */
		if (live > 0 && now_ms() > end_ms && write(p[1], "x", 1) != 1 && errno != EAGAIN)
			bad++;
	}
	for (i = 1; i < next; i++)
		if (state[i] == K_LIVE)
			bad++;
	close(kfd);
	t->bad += bad;
	return bad;
}

static void soak(void)
{
	int slow = t_slack >= 1000;
	long clients = env_long("KEVENT_SOAK_CLIENTS", slow ? 40 : 200);
	long secs = env_long("KEVENT_SOAK_S", slow ? 3 : 5);
	struct tally *tl, sum;
	long long end;
	pid_t *pids;
	long i, ok = 0;

	tl = mmap(NULL, sizeof(*tl) * (size_t)clients, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc((size_t)clients, sizeof(*pids));
	if (tl == MAP_FAILED || pids == NULL) {
		CHECK(0, "soak: memory");
		return;
	}
	memset(tl, 0, sizeof(*tl) * (size_t)clients);
	alarm((unsigned)(secs + 120));
	t_note("soak: %ld clients for %ld s", clients, secs);
	end = now_ms() + secs * 1000;
	for (i = 0; i < clients; i++) {
		pids[i] = t_fork();
		if (pids[i] == 0)
			_exit(soak_client((int)i, end, &tl[i]) ? 1 : 0);
	}
	memset(&sum, 0, sizeof(sum));
	for (i = 0; i < clients; i++) {
		int st = 0;

		if (pids[i] > 0 && t_reap(pids[i], &st, (secs + 60) * 1000L) >= 0 &&
		    WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		sum.added += tl[i].added;
		sum.delivered += tl[i].delivered;
		sum.removed += tl[i].removed;
		sum.bad += tl[i].bad;
	}
	t_note("soak: %ld added, %ld delivered, %ld removed, %ld accounting errors",
	       sum.added, sum.delivered, sum.removed, sum.bad);
	CHECK_EQ(ok, clients, "soak: every client finished with its books balanced");
	CHECK_EQ(sum.bad, 0, "soak: no event lost, duplicated, unknown or delivered after REMOVE");
	CHECK_EQ(sum.delivered + sum.removed, sum.added, "soak: delivered + removed = added");
	CHECK(sum.added > clients, "soak: real work was done");
	munmap(tl, sizeof(*tl) * (size_t)clients);
	free(pids);
	alarm(60);
}

/* ------------------------------------------------------------------ */
/* storm                                                                */

static void storm_client(unsigned seed)
{
	int kfd = open(t_dev, O_RDWR | O_CLOEXEC), k2 = -1, p[2], s[2];
	struct ukevent uk[4], ev[4];
	unsigned n = 0;

	if (kfd < 0 || pipe2(p, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
		_exit(2);
	for (;;) {
		unsigned what = rand_r(&seed) % 8;

		n++;
		switch (what) {
		case 0:
			uk[0] = uk_timer(1 + rand_r(&seed) % 5, 0, n, 0);
			uk[1] = uk_make(KEVENT_POLL, (__u32)p[0], KEVENT_POLL_POLLIN, 0, n, 1);
			uk[2] = uk_make(KEVENT_SOCKET, (__u32)s[0], KEVENT_SOCKET_RECV, 0, n, 2);
			k_ctl(kfd, KEVENT_CTL_ADD, uk, 3, NULL);
			break;
		case 1:
			if (k2 < 0)
				k2 = open(t_dev, O_RDWR | O_CLOEXEC);
			/* POLL on another kevent queue (the daemon's own device). */
			uk[0] = uk_make(KEVENT_POLL, (__u32)k2, KEVENT_POLL_POLLIN, 0, n, 3);
			k_ctl(kfd, KEVENT_CTL_ADD, uk, 1, NULL);
			if (k2 >= 0)
				k_add1(k2, uk_timer(2, KEVENT_REQ_ONESHOT, n, 4));
			break;
		case 2:
			k_wait(kfd, ev, 4, rand_r(&seed) % 20);
			break;
		case 3:
			if (write(p[1], "x", 1) < 0 || write(s[1], "y", 1) < 0)
				_exit(3);
			break;
		case 4:
			uk[0] = uk_make(KEVENT_POLL, (__u32)p[0], KEVENT_POLL_POLLOUT, 0, n - 1, 1);
			k_ctl(kfd, KEVENT_CTL_MODIFY, uk, 1, NULL);
			break;
		case 5:
			uk[0] = uk_timer(1, 0, n - 1, 0);
			k_ctl(kfd, KEVENT_CTL_REMOVE, uk, 1, NULL);
			break;
		case 6:
			if (k2 >= 0 && rand_r(&seed) % 4 == 0) {
				close(k2);
				k2 = -1;
			}
			break;
		default:
			k_wait(kfd, ev, 4, 0);
			break;
		}
	}
}

/* The state letter of /proc/PID/stat ('D': uninterruptible). */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *c;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	c = strrchr(buf, ')');
	return c && c[1] && c[2] ? c[2] : '?';
}

static long fd_count(long pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

#define STORM_ALIVE 50

static void storm(void)
{
	long total = env_long("KEVENT_STORM_N", t_slack >= 1000 ? 200 : 1000);
	long daemon = env_long("KEVENT_DAEMON_PID", 0);
	long base = daemon ? fd_count(daemon) : -1;
	pid_t pids[STORM_ALIVE];
	long long kill_at[STORM_ALIVE];
	long started = 0, reaped = 0, stuck = 0, i, after = -1;
	unsigned seed = (unsigned)getpid();
	long long t0 = now_ms();
	struct ukevent ev[1];
	int kfd;

	alarm(300);
	memset(pids, 0, sizeof(pids));
	t_note("storm: %ld clients, %d at once, daemon pid %ld (fds %ld)", total,
	       STORM_ALIVE, daemon, base);
	while (reaped + stuck < total) {
		for (i = 0; i < STORM_ALIVE; i++) {
			if (pids[i] == 0 && started < total) {
				unsigned cs = rand_r(&seed);

				pids[i] = t_fork();
				if (pids[i] == 0) {
					alarm(0);
					storm_client(cs);
				}
				kill_at[i] = now_ms() + rand_r(&seed) % 41;
				started++;
			} else if (pids[i] > 0 && now_ms() >= kill_at[i]) {
				int st = 0;

				kill(pids[i], SIGKILL);
				if (t_reap(pids[i], &st, 10000) < 0) {
					t_note("storm: client %d not reaped in 10 s (state %c)",
					       (int)pids[i], proc_state(pids[i]));
					stuck++;
				} else {
					reaped++;
				}
				pids[i] = 0;
			}
		}
		sleep_ms(1);
	}
	t_note("storm: %ld clients killed in %lld ms", reaped, now_ms() - t0);
	CHECK_EQ(stuck, 0, "storm: every SIGKILLed client was reaped (none left in D state)");
	CHECK_EQ(reaped, total, "storm: all clients ran and died");

	kfd = open(t_dev, O_RDWR | O_CLOEXEC);
	CHECK(kfd >= 0, "storm: the daemon still opens");
	CHECK_RET(k_add1(kfd, uk_timer(5, KEVENT_REQ_ONESHOT, 0x5707, 0)), 0,
		  "storm: the daemon still serves an ADD");
	CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, "storm: and delivers");
	CHECK_HEX(ev[0].user[0], 0x5707, "storm: the right event");
	close(kfd);
	if (daemon) {
		long long t1 = now_ms();

		do {
			after = fd_count(daemon);
			if (after <= base)
				break;
			sleep_ms(20);
		} while (now_ms() - t1 < 5000);
		t_note("storm: daemon fds %ld before, %ld after", base, after);
		CHECK(after >= 0 && after <= base,
		      "storm: the daemon's descriptor count is back to its baseline");
	}
	alarm(60);
}

int main(int argc, char **argv)
{
	int soak_only = argc > 2 && strcmp(argv[2], "--soak-only") == 0;
	int storm_only = argc > 2 && strcmp(argv[2], "--storm-only") == 0;

	t_init(argc, argv, "test_soak");
	if (!storm_only)
		soak();
	if (!soak_only)
		storm();
	return t_done();
}
