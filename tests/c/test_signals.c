/*
 * test_signals - a signal ends a sleeping WAIT (docs/ABI.md section 3): the call
 * returns what is ready, possibly 0, and never -1/EINTR; SA_RESTART makes
 * no difference (the WAIT is not restarted: it already returned).  A
 * blocked signal does not end it.
 *
 * The signal is SIGUSR1 from a POSIX timer (SIGALRM is the watchdog's).
 */

#include "testutil.h"

static int fd;
static timer_t tm;
static volatile sig_atomic_t got;

static void on_usr1(int sig)
{
	(void)sig;
	got++;
}

static void install(int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

static void arm_ms(long ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	timer_settime(tm, 0, &its, NULL);
}

static void case_nothing_ready(int flags, unsigned timeout, const char *mode)
{
	struct ukevent ev[1];
	struct kevent_user_control h;
	char name[160];
	long long t0, dt;
	int r, e;

	install(flags);
	got = 0;
	t0 = now_ms();
	arm_ms(200);
	r = k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, 1, timeout, ev, 1, &h);
	e = errno;
	dt = now_ms() - t0;
	errno = e;
	snprintf(name, sizeof(name),
		 "%s: signal at 200 ms ends a WAIT (timeout %u) with nothing ready: 0, not EINTR",
		 mode, timeout);
	CHECK_RET(r, 0, name);
	snprintf(name, sizeof(name), "%s: hdr.num 0", mode);
	CHECK_EQ(h.num, 0, name);
	snprintf(name, sizeof(name), "%s: handler ran once", mode);
	CHECK_EQ(got, 1, name);
	snprintf(name, sizeof(name), "%s: returned at the signal, well before the timeout",
		 mode);
	CHECK_TIME(dt, 198, 200, name);
}

static void case_one_ready(int flags, const char *mode)
{
	struct ukevent ev[2];
	char name[160];
	long long t0, dt;
	int r;

	install(flags);
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x201, 0)), 0,
		  "ADD oneshot 30 ms");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "timer fired");
	got = 0;
	t0 = now_ms();
	arm_ms(200);
	r = k_wait(fd, ev, 2, 5000);
	dt = now_ms() - t0;
	snprintf(name, sizeof(name),
		 "%s: one ready, WAIT num=2 timeout 5000, signal at 200 ms: returns 1", mode);
	CHECK_RET(r, 1, name);
	snprintf(name, sizeof(name), "%s: the ready event is delivered", mode);
	CHECK_HEX(ev[0].user[0], 0x201, name);
	snprintf(name, sizeof(name), "%s: handler ran once", mode);
	CHECK_EQ(got, 1, name);
	snprintf(name, sizeof(name), "%s: returned at the signal", mode);
	CHECK_TIME(dt, 198, 200, name);
}

static void case_blocked(void)
{
	struct ukevent ev[1];
	sigset_t set, old;
	long long t0;

	install(0);
	got = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	t0 = now_ms();
	arm_ms(100);
	CHECK_RET(k_wait(fd, ev, 1, 600), 0, "blocked signal: WAIT returns 0");
	CHECK_TIME(now_ms() - t0, 598, 600, "blocked signal does not end the WAIT early");
	CHECK_EQ(got, 0, "handler not run while blocked");
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK_EQ(got, 1, "handler runs once unblocked");
}

int main(int argc, char **argv)
{
	struct sigevent sev;
	struct ukevent ev[1];

	t_init(argc, argv, "test_signals");
	fd = dev_open(t_dev, O_RDWR);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) != 0) {
		CHECK(0, "timer_create");
		return t_done();
	}

	case_nothing_ready(0, 5000, "no SA_RESTART");
	case_nothing_ready(SA_RESTART, 5000, "SA_RESTART");
	case_nothing_ready(0, 0, "no SA_RESTART, timeout 0 (1 s)");
	case_one_ready(0, "no SA_RESTART");
	case_one_ready(SA_RESTART, "SA_RESTART");
	case_blocked();

	/* The queue still works after the interrupted WAITs. */
	CHECK_RET(k_add1(fd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x301, 0)), 0,
		  "ADD after the signals");
	CHECK_RET(k_wait(fd, ev, 1, 2000), 1, "WAIT after the signals gets the timer");

	timer_delete(tm);
	close(fd);
	return t_done();
}
