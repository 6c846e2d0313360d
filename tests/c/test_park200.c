/*
 * test_park200 - 200 WAITs parked at once from one CPU, all answered.
 *
 * The process is pinned to one CPU (the first it may run on), so in the
 * percpu and uring serving modes every request arrives through the same
 * reader or ring. 200 threads each WAIT for one event (timeout 0: one event
 * or 1 s; retried until it has one, bounded) on one queue; once all of them
 * are about to call, one ADD registers 200 ONESHOT timers of 1 ms with
 * distinct user data. Every thread must get exactly one event, and the 200
 * events must be exactly the 200 timers, each once.
 */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>

#define N 200

static int q;
static int started;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static __u32 got_user[N];
static int got_n[N], got_err[N];

static void *waiter(void *arg)
{
	int i = (int)(long)arg, tries;
	struct ukevent ev;

	pthread_mutex_lock(&mu);
	started++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	/* A WAIT with timeout 0 returns after 1 s without events: retry, up
	 * to 60 s in all (the test's own watchdog). */
	for (tries = 0; tries < 50; tries++) {
		int r = k_wait(q, &ev, 1, 0);

		if (r < 0) {
			got_err[i] = errno;
			return NULL;
		}
		if (r > 0) {
			got_n[i] = r;
			got_user[i] = ev.user[0];
			return NULL;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[N];
	pthread_attr_t attr;
	struct ukevent *uks;
	struct kevent_user_control h;
	cpu_set_t set;
	int i, cpu = 0, ok_threads = 0, seen_ok = 1, errs = 0;
	static int seen[N];

	t_init(argc, argv, "test_park200");
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
			cpu++;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		CHECK_RET(sched_setaffinity(0, sizeof(set), &set), 0, "pinned to one CPU");
	}
	q = dev_open(t_dev, O_RDWR);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (i = 0; i < N; i++) {
		if (pthread_create(&th[i], &attr, waiter, (void *)(long)i) != 0) {
			CHECK(0, "pthread_create");
			return t_done();
		}
	}
	pthread_mutex_lock(&mu);
	while (started < N)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	/* Give the WAITs a moment to reach the daemon (not needed for the
	 * result: an early ADD only means some WAITs do not park). */
	sleep_ms(200);
	uks = calloc(N, sizeof(*uks));
	for (i = 0; i < N; i++)
		uks[i] = uk_timer(1, KEVENT_REQ_ONESHOT, (__u32)i, 0);
	CHECK_RET(k_ctl(q, KEVENT_CTL_ADD, uks, N, &h), 0, "ADD 200 ONESHOT timers");
	CHECK_EQ(h.num, 0, "all 200 queued");
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < N; i++) {
		if (got_err[i])
			errs++;
		if (got_n[i] == 1) {
			ok_threads++;
			if (got_user[i] >= N || seen[got_user[i]]++)
				seen_ok = 0;
		}
	}
	CHECK_EQ(errs, 0, "no WAIT failed");
	CHECK_EQ(ok_threads, N, "every one of the 200 WAITs got exactly one event");
	CHECK(seen_ok, "the 200 events are the 200 timers, each once");
	CHECK_EQ(k_wait(q, uks, N, 1), 0, "nothing left over");
	free(uks);
	close(q);
	return t_done();
}
