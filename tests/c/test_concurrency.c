/*
 * test_concurrency - 4 processes x 8 threads of ADD/REMOVE/MODIFY/WAIT on a
 * queue shared by all (opened before fork) and one queue per process.
 *
 * Every kevent is a ONESHOT TIMER of 1-3 ms with a unique user[0]. Each
 * thread registers ROUNDS of them, alternately on the shared and on its
 * process's queue; it REMOVEs some at once and MODIFYs others (same mask
 * and flags), and in between WAITs on both queues, recording each delivery
 * in shared memory. At the end the queues are drained. Then, for every
 * kevent: if a REMOVE found it registered it must never have been
 * delivered; otherwise it was delivered exactly once (and a REMOVE that
 * did not find it must be explained by that delivery). Nothing is
 * delivered that was never added.
 */
#include "testutil.h"

#include <pthread.h>

#define PROCS 4
#define THREADS 8
#define ROUNDS 150
#define IDS (PROCS * THREADS * ROUNDS)

struct shared {
	int delivered[IDS];
	int removed[IDS];	/* REMOVE found it registered */
	int added[IDS];
	int bad_user;		/* deliveries of ids never added */
	int errors;
};

static struct shared *sh;
static int shared_q, own_q, proc_no;

static void record(const struct ukevent *ev, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		__u32 u = ev[i].user[0];

		if (u >= IDS || !__atomic_load_n(&sh->added[u], __ATOMIC_SEQ_CST) ||
		    ev[i].ret_flags != KEVENT_RET_DONE)
			__atomic_add_fetch(&sh->bad_user, 1, __ATOMIC_SEQ_CST);
		else
			__atomic_add_fetch(&sh->delivered[u], 1, __ATOMIC_SEQ_CST);
	}
}

static void drain(int q, unsigned timeout)
{
	struct ukevent ev[16];
	int n = k_wait(q, ev, 16, timeout);

	if (n < 0)
		__atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
	else
		record(ev, n);
}

static void *worker(void *arg)
{
	int t = (int)(long)arg, k;

	for (k = 0; k < ROUNDS; k++) {
		__u32 id = (__u32)((proc_no * THREADS + t) * ROUNDS + k);
		int q = (k & 1) ? own_q : shared_q;
		struct ukevent uk = uk_timer(1 + (id % 3), KEVENT_REQ_ONESHOT, id, 0);
		struct kevent_user_control h;
		__u32 f = 0;

		__atomic_store_n(&sh->added[id], 1, __ATOMIC_SEQ_CST);
		if (k_ctl(q, KEVENT_CTL_ADD, &uk, 1, &h) != 0 || h.num != 0) {
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		switch (k % 5) {
		case 0:
			if (k_remove1(q, uk_timer(1 + (id % 3), KEVENT_REQ_ONESHOT, id, 0), &f) != 0)
				__atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
			else if (f == KEVENT_RET_DONE)
				__atomic_store_n(&sh->removed[id], 1, __ATOMIC_SEQ_CST);
			break;
		case 1: {
			struct ukevent m = uk;

			if (k_ctl(q, KEVENT_CTL_MODIFY, &m, 1, NULL) != 0)
				__atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
			break;
		}
		default:
			break;
		}
		if (k % 3 == 0) {
			drain(shared_q, 1);
			drain(own_q, 1);
		}
	}
	return NULL;
}

static int child(int p)
{
	pthread_t th[THREADS];
	int i;

	proc_no = p;
	own_q = open(t_dev, O_RDWR);
	if (own_q < 0)
		return 1;
	for (i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0)
			return 1;
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	/* Drain the own queue: every timer fires within 3 ms. */
	{
		long long end = now_ms() + 3000 + t_slack;

		while (now_ms() < end) {
			struct ukevent ev[64];
			int n = k_wait(own_q, ev, 64, 50);

			if (n < 0) {
				__atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
				break;
			}
			record(ev, n);
		}
	}
	close(own_q);
	return 0;
}

int main(int argc, char **argv)
{
	pid_t kids[PROCS];
	int p, i, status, lost = 0, twice = 0, removed_delivered = 0, removed = 0;

	t_init(argc, argv, "test_concurrency");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		CHECK(0, "mmap shared");
		return t_done();
	}
	shared_q = dev_open(t_dev, O_RDWR);
	for (p = 0; p < PROCS; p++) {
		kids[p] = t_fork();
		if (kids[p] == 0) {
			alarm(0);
			_exit(child(p));
		}
	}
	for (p = 0; p < PROCS; p++) {
		long long ms = t_reap(kids[p], &status, 50000);

		CHECK(ms >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a worker process finished cleanly");
	}
	/* Drain the shared queue. */
	{
		long long end = now_ms() + 3000 + t_slack;

		while (now_ms() < end) {
			struct ukevent ev[64];
			int n = k_wait(shared_q, ev, 64, 50);

			if (n < 0)
				break;
			record(ev, n);
		}
	}
	for (i = 0; i < IDS; i++) {
		if (!sh->added[i])
			continue;
		if (sh->removed[i]) {
			removed++;
			if (sh->delivered[i])
				removed_delivered++;
		} else if (sh->delivered[i] == 0) {
			lost++;
		} else if (sh->delivered[i] > 1) {
			twice++;
		}
	}
	t_note("%d kevents, %d removed before delivery", IDS, removed);
	CHECK_EQ(sh->errors, 0, "no ioctl failed");
	CHECK_EQ(sh->bad_user, 0, "nothing delivered that was never added, all with DONE");
	CHECK_EQ(removed_delivered, 0, "nothing delivered for a removed kevent");
	CHECK_EQ(lost, 0, "every kevent not removed was delivered");
	CHECK_EQ(twice, 0, "no kevent was delivered twice");
	CHECK(removed > 0, "some REMOVEs found their kevent registered");
	close(shared_q);
	return t_done();
}
