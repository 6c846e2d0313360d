/*
 * testutil.h - shared helpers of the C tests of /dev/kevent.
 *
 * Every test program is one .c file that includes this header and calls
 * t_init() first and returns t_done() last.  Output, one line per check:
 *
 *     ok - name
 *     not ok - name: expected X got Y (file:line)
 *
 * and lines starting with '#' for information.  Exit status: 0 all checks
 * passed, 1 at least one failed, 77 skipped.
 *
 * Environment:
 *   KEVENT_SLACK_MS   tolerance added to every upper time bound (default
 *                     300; the qemu VM sets 1500).  Lower time bounds are
 *                     strict: a timer of P ms never fires before P-2 ms
 *                     after the ADD that registered it.
 *   KEVENT_TRANSPORT  "fuse" or "cuse": the few places where the two
 *                     transports legitimately differ (see t_is_fuse()).
 *
 * The argument of the ioctls is a 12-byte header followed by num 40-byte
 * ukevents, so the array starts at arg + 12 and is only 4-byte aligned:
 * the kb_* helpers build it in a plain byte buffer and copy ukevents in
 * and out with memcpy.
 */

#ifndef KEVENT_TESTUTIL_H
#define KEVENT_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kevent.h"

#define T_UNUSED __attribute__((unused))

#define HDR_SIZE	12u	/* sizeof(struct kevent_user_control) */
#define UK_SIZE		40u	/* sizeof(struct ukevent) */
#define KB_SIZE(n)	(HDR_SIZE + UK_SIZE * (unsigned)(n))

/* A long period for timers that must never fire during a test. */
#define NEVER_MS	1000000u

#define KEVENT_LIMIT	1023u	/* default per-queue limit (docs/ABI.md section 2) */

static int t_pass T_UNUSED, t_fail T_UNUSED;
static const char *t_name T_UNUSED = "test";
static const char *t_dev T_UNUSED = "/dev/kevent";
static const char *t_transport T_UNUSED = "";
static long t_slack T_UNUSED = 300;

/* ------------------------------------------------------------------ */
/* Reporting                                                           */

static inline const char *t_errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

static inline void t_report(int ok, const char *name, const char *file,
			    int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static inline void t_report(int ok, const char *name, const char *file,
			    int line, const char *fmt, ...)
{
	if (ok) {
		t_pass++;
		printf("ok - %s\n", name);
	} else {
		va_list ap;

		t_fail++;
		printf("not ok - %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(" (%s:%d)\n", file, line);
	}
	fflush(stdout);
}

static inline void t_note(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static inline void t_note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* A boolean check; what describes the expectation. */
#define CHECK(cond, name)						\
	do {								\
		int _c = !!(cond);					\
		t_report(_c, (name), __FILE__, __LINE__,		\
			 "expected %s got false", #cond);		\
	} while (0)

/* Exact integer equality (signed print). */
#define CHECK_EQ(got, exp, name)					\
	do {								\
		long long _g = (long long)(got);			\
		long long _e = (long long)(exp);			\
		t_report(_g == _e, (name), __FILE__, __LINE__,		\
			 "expected %lld got %lld", _e, _g);		\
	} while (0)

/* Exact equality of flags / 32-bit words (hex print). */
#define CHECK_HEX(got, exp, name)					\
	do {								\
		unsigned long long _g = (unsigned long long)(got);	\
		unsigned long long _e = (unsigned long long)(exp);	\
		t_report(_g == _e, (name), __FILE__, __LINE__,		\
			 "expected 0x%llx got 0x%llx", _e, _g);		\
	} while (0)

/* lo <= got <= hi. */
#define CHECK_RANGE(got, lo, hi, name)					\
	do {								\
		long long _g = (long long)(got);			\
		long long _l = (long long)(lo), _h = (long long)(hi);	\
		t_report(_g >= _l && _g <= _h, (name), __FILE__,	\
			 __LINE__, "expected %lld..%lld got %lld",	\
			 _l, _h, _g);					\
	} while (0)

/*
 * A duration in ms against [lo, hi + slack]: lower bounds are strict,
 * upper bounds get KEVENT_SLACK_MS.
 */
#define CHECK_TIME(got, lo, hi, name)					\
	CHECK_RANGE((got), (lo), (long long)(hi) + t_slack, (name))

/* A call that must succeed with exactly this return value. */
#define CHECK_RET(expr, exp, name)					\
	do {								\
		long long _r = (long long)(expr);			\
		int _err = errno;					\
		long long _e = (long long)(exp);			\
		if (_r == -1 && _e != -1)				\
			t_report(0, (name), __FILE__, __LINE__,		\
				 "expected %lld got -1/%s", _e,		\
				 t_errname(_err));			\
		else							\
			t_report(_r == _e, (name), __FILE__, __LINE__,	\
				 "expected %lld got %lld", _e, _r);	\
		errno = _err;						\
	} while (0)

/* A call that must fail with -1 and this errno. */
#define CHECK_ERR(expr, experr, name)					\
	do {								\
		long long _r = (long long)(expr);			\
		int _err = errno;					\
		int _x = (experr);					\
		if (_r == -1)						\
			t_report(_err == _x, (name), __FILE__, __LINE__,\
				 "expected -1/%s got -1/%s",		\
				 t_errname(_x), t_errname(_err));	\
		else							\
			t_report(0, (name), __FILE__, __LINE__,		\
				 "expected -1/%s got %lld",		\
				 t_errname(_x), _r);			\
		errno = _err;						\
	} while (0)

/* Byte-exact comparison of two memory areas. */
#define CHECK_MEM(got, exp, len, name)					\
	do {								\
		const unsigned char *_g = (const void *)(got);		\
		const unsigned char *_e = (const void *)(exp);		\
		size_t _n = (len), _i;					\
		for (_i = 0; _i < _n && _g[_i] == _e[_i]; _i++)		\
			;						\
		if (_i == _n)						\
			t_report(1, (name), __FILE__, __LINE__, "%s", "");\
		else							\
			t_report(0, (name), __FILE__, __LINE__,		\
				 "expected byte %zu = 0x%02x got 0x%02x",\
				 _i, _e[_i], _g[_i]);			\
	} while (0)

/* ------------------------------------------------------------------ */
/* Time                                                                */

/* CLOCK_MONOTONIC in ms (the clock of the TIMER ret_data[0]). */
static inline long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same, truncated to u32 as the daemon reports it. */
static inline __u32 now_ms_u32(void)
{
	return (__u32)now_ms();
}

/* Signed distance a - b of two truncated u32 ms stamps. */
static inline long long u32_diff(__u32 a, __u32 b)
{
	return (long long)(int32_t)(a - b);
}

/* Sleep ms milliseconds, resuming after signals. */
static inline void sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static inline void t_watchdog(int sig)
{
	static const char msg[] = "not ok - watchdog: test still running after 60 s\n";
	ssize_t r;

	(void)sig;
	r = write(1, msg, sizeof(msg) - 1);
	(void)r;
	_exit(1);
}

/* True when KEVENT_TRANSPORT=fuse (the FUSE-file fallback). */
static inline int t_is_fuse(void)
{
	return strcmp(t_transport, "fuse") == 0;
}

static inline void t_init(int argc, char **argv, const char *name)
{
	const char *s;
	struct sigaction sa;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_name = name;
	if (argc > 1 && argv[1][0] != '\0')
		t_dev = argv[1];
	else if ((s = getenv("KEVENT_DEVICE")) != NULL && *s != '\0')
		t_dev = s;

	s = getenv("KEVENT_SLACK_MS");
	if (s != NULL && *s != '\0')
		t_slack = strtol(s, NULL, 10);
	if (t_slack < 0)
		t_slack = 0;
	s = getenv("KEVENT_TRANSPORT");
	if (s != NULL)
		t_transport = s;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = t_watchdog;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(60);

	t_note("%s: device %s, transport %s, slack %ld ms", name, t_dev,
	       *t_transport ? t_transport : "unset", t_slack);
}

static inline int t_done(void)
{
	alarm(0);
	t_note("%s: %d ok, %d not ok", t_name, t_pass, t_fail);
	fflush(stdout);
	return t_fail ? 1 : 0;
}

/* Skip the whole program (exit 77). */
static inline void t_skip_all(const char *why)
{
	t_note("SKIP %s: %s", t_name, why);
	exit(77);
}

/* ------------------------------------------------------------------ */
/* Device                                                              */

/* Open the device; failing is fatal ("not ok - open device"). */
static inline int dev_open_at(const char *path, int flags, const char *file, int line)
{
	int fd = open(path, flags);

	if (fd < 0) {
		int e = errno;

		t_report(0, "open device", file, line,
			 "expected a descriptor for %s got -1/%s (%s)", path,
			 t_errname(e), strerror(e));
		t_done();
		exit(1);
	}
	return fd;
}
#define dev_open(path, flags) dev_open_at((path), (flags), __FILE__, __LINE__)

/* ------------------------------------------------------------------ */
/* Argument buffers: header + n ukevents, array at +12                 */

static inline unsigned char *kb_alloc(unsigned n)
{
	unsigned char *b = calloc(1, KB_SIZE(n) + 64);

	if (b == NULL) {
		perror("calloc");
		exit(1);
	}
	return b;
}

static inline void kb_hdr(void *b, unsigned cmd, unsigned num, unsigned timeout)
{
	struct kevent_user_control c;

	c.cmd = cmd;
	c.num = num;
	c.timeout = timeout;
	memcpy(b, &c, sizeof(c));
}

static inline struct kevent_user_control kb_gethdr(const void *b)
{
	struct kevent_user_control c;

	memcpy(&c, b, sizeof(c));
	return c;
}

static inline void kb_put(void *b, unsigned i, const struct ukevent *uk)
{
	memcpy((unsigned char *)b + HDR_SIZE + UK_SIZE * i, uk, UK_SIZE);
}

static inline struct ukevent kb_get(const void *b, unsigned i)
{
	struct ukevent uk;

	memcpy(&uk, (const unsigned char *)b + HDR_SIZE + UK_SIZE * i, UK_SIZE);
	return uk;
}

/* A ukevent of any type: key (id0, 0, u0, u1), everything else 0. */
static inline struct ukevent uk_make(__u32 type, __u32 id0, __u32 event,
				     __u32 req_flags, __u32 u0, __u32 u1)
{
	struct ukevent uk;

	memset(&uk, 0, sizeof(uk));
	uk.id.raw[0] = id0;
	uk.type = type;
	uk.event = event;
	uk.req_flags = req_flags;
	uk.user[0] = u0;
	uk.user[1] = u1;
	return uk;
}

/* A TIMER ukevent: period ms, key (period, 0, u0, u1). */
static inline struct ukevent uk_timer(__u32 period, __u32 req_flags,
				      __u32 u0, __u32 u1)
{
	return uk_make(KEVENT_TIMER, period, KEVENT_TIMER_FIRED, req_flags, u0, u1);
}

/*
 * One ioctl with a header {cmd, num, timeout} and the n ukevents of uks
 * (n may exceed num: the buffer then has room for n).  Afterwards the
 * header is stored in *hdr (if not NULL) and the n slots of the array are
 * copied back into uks.  Returns the ioctl result with errno preserved.
 */
static inline int k_call(int fd, unsigned long req, unsigned cmd, unsigned num,
			 unsigned timeout, struct ukevent *uks, unsigned n,
			 struct kevent_user_control *hdr)
{
	unsigned char *b = kb_alloc(n);
	unsigned i;
	int r, e;

	kb_hdr(b, cmd, num, timeout);
	for (i = 0; i < n; i++)
		kb_put(b, i, &uks[i]);
	r = ioctl(fd, req, b);
	e = errno;
	if (hdr)
		*hdr = kb_gethdr(b);
	for (i = 0; i < n; i++)
		uks[i] = kb_get(b, i);
	free(b);
	errno = e;
	return r;
}

/* ADD/REMOVE/MODIFY of n ukevents through KEVENT_USER_CTL. */
static inline int k_ctl(int fd, unsigned cmd, struct ukevent *uks, unsigned n,
			struct kevent_user_control *hdr)
{
	return k_call(fd, KEVENT_USER_CTL, cmd, n, 0, uks, n, hdr);
}

static inline int k_add1(int fd, struct ukevent uk)
{
	return k_ctl(fd, KEVENT_CTL_ADD, &uk, 1, NULL);
}

/* REMOVE of one key; returns the ioctl result, *flags the written-back ret_flags. */
static inline int k_remove1(int fd, struct ukevent uk, __u32 *flags)
{
	int r = k_ctl(fd, KEVENT_CTL_REMOVE, &uk, 1, NULL);

	if (flags)
		*flags = uk.ret_flags;
	return r;
}

/* WAIT through KEVENT_USER_WAIT for at most num events into out[]. */
static inline int k_wait(int fd, struct ukevent *out, unsigned num,
			 unsigned timeout)
{
	struct ukevent dummy;

	if (num == 0 || out == NULL)
		return k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, num,
			      timeout, &dummy, 0, NULL);
	memset(out, 0, sizeof(*out) * num);
	return k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, num, timeout,
		      out, num, NULL);
}

/* Readiness of fd by poll() with timeout ms: the revents, 0 when none. */
static inline int poll_fd(int fd, short events, int timeout)
{
	struct pollfd p;
	int r;

	p.fd = fd;
	p.events = events;
	p.revents = 0;
	do {
		r = poll(&p, 1, timeout);
	} while (r < 0 && errno == EINTR);
	return r > 0 ? p.revents : 0;
}

/*
 * Register n timers of period NEVER_MS with distinct keys (NEVER_MS, 0,
 * base + i, 0) in batches; returns the number the device accepted.
 */
static inline unsigned k_fill(int fd, unsigned n, __u32 base)
{
	unsigned done = 0;

	while (done < n) {
		unsigned chunk = n - done > 256 ? 256 : n - done;
		struct ukevent *uks = calloc(chunk, sizeof(*uks));
		struct kevent_user_control h;
		unsigned i;
		int r;

		for (i = 0; i < chunk; i++)
			uks[i] = uk_timer(NEVER_MS, 0, base + done + i, 0);
		r = k_ctl(fd, KEVENT_CTL_ADD, uks, chunk, &h);
		free(uks);
		if (r != 0 || h.num != 0)
			break;
		done += chunk;
	}
	return done;
}

/* Fork with stdout flushed first, so buffered lines are not duplicated. */
static inline pid_t t_fork(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

/*
 * Reap pid, polling with WNOHANG for at most limit_ms.  Returns the
 * elapsed ms, or -1 if the child did not exit in time (it is then killed).
 */
static inline long long t_reap(pid_t pid, int *status, long limit_ms)
{
	long long t0 = now_ms();

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return now_ms() - t0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() - t0 > limit_ms) {
			kill(pid, SIGKILL);
			return -1;
		}
		sleep_ms(5);
	}
}

#endif /* KEVENT_TESTUTIL_H */
